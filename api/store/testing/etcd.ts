// Tests start their own etcd with this when N0STACK_TEST_ETCD is not set (see hack/test.sh).
export { startEtcd, type EtcdProcess } from '../etcd-process';
