// Admission: one strategy per kind (the modules beside this file), the rule table they draw
// from (rules.ts), the calls every writer makes (admit.ts) and the facade's admitting store.
export { STRATEGIES, admitCreate, admitDelete, admitUpdate, dependantsIn, strategyFor } from './admit';
export { AdmittingStore } from './store';
export { DELETION_BLOCKED, FINALIZERS } from './finalizers';
export { RULES, celRules, violation, type Rule, type RuleId } from './rules';
export { describeDependants, type Dependant, type World } from './types';
export { checkBlockStorageSpec } from './blockstorage';
export { checkVirtualMachineSpec } from './virtualmachine';
export { ADMISSION_GROUP, AdmissionReviewError, reviewAdmission, type AdmissionReview, type AdmissionReviewResponse } from './review';
