// The seed's spec rules moved into the kinds' admission modules (api/admission/); re-exported
// here for the VM reconciler, which reports a spec problem as a condition.
export { checkBlockStorageSpec, checkVirtualMachineSpec } from './admission';
