// The admission rules as a Kubernetes validating admission webhook: with the Kubernetes store, a
// `kubectl apply`, `edit` or `delete` of an n0stack.io object reaches the API server without
// passing the facade, and the CRDs' CEL rules cannot say what needs other objects (a VM naming a
// disk that does not exist or is being deleted, deleting a disk a VM uses). The API server sends
// each such write here (the chart's ValidatingWebhookConfiguration) and the same admit* functions
// every facade write calls judge it. Writes by the facade (already admitted) and the controllers
// (finalizers; status goes through the /status subresource, which the webhook does not match) are
// let through by their user names.
import { isN0Error, type ErrorCode } from '../errors';
import type { Store } from '../store/store';
import { isKind, type AnyResource } from '../types';
import { admitCreate, admitDelete, admitUpdate } from './admit';

/** The parts of admission.k8s.io/v1 AdmissionReview this webhook reads. */
export interface AdmissionReview {
  apiVersion?: string;
  kind?: string;
  request?: {
    uid?: string;
    kind?: { group?: string; version?: string; kind?: string };
    operation?: 'CREATE' | 'UPDATE' | 'DELETE' | 'CONNECT';
    subResource?: string;
    userInfo?: { username?: string };
    object?: AnyResource | null;
    oldObject?: AnyResource | null;
  };
}

export interface AdmissionReviewResponse {
  apiVersion: 'admission.k8s.io/v1';
  kind: 'AdmissionReview';
  response: { uid: string; allowed: boolean; status?: { code: number; reason: string; message: string } };
}

/**
 * What the API server answers the writer with, by the rule's error. Not 404 or 409-AlreadyExists:
 * a client would take those for the written object's own absence or existence, while here they
 * are about an object it names (grpc-gateway's FAILED_PRECONDITION is 400 likewise).
 */
const HTTP_BY_CODE: Partial<Record<ErrorCode, { code: number; reason: string }>> = {
  InvalidArgument: { code: 422, reason: 'Invalid' },
  FailedPrecondition: { code: 400, reason: 'BadRequest' },
  NotFound: { code: 400, reason: 'BadRequest' },
  AlreadyExists: { code: 400, reason: 'BadRequest' },
  Conflict: { code: 409, reason: 'Conflict' },
};

export const ADMISSION_GROUP = 'n0stack.io';

export class AdmissionReviewError extends Error {}

/**
 * Judges one AdmissionReview. Throws AdmissionReviewError for a review that is not one (the HTTP
 * side answers 400); a rule's refusal is `allowed: false` with the rule's message, and an error
 * reading the store is a refusal too (the webhook's failurePolicy is Fail: nothing unjudged lands).
 */
export async function reviewAdmission(store: Store, review: AdmissionReview, trustedUsers: ReadonlySet<string>): Promise<AdmissionReviewResponse> {
  const request = review?.request;
  if (review?.apiVersion !== 'admission.k8s.io/v1' || review.kind !== 'AdmissionReview' || !request || typeof request.uid !== 'string') {
    throw new AdmissionReviewError('expected an admission.k8s.io/v1 AdmissionReview with request.uid');
  }
  const answer = (allowed: boolean, status?: AdmissionReviewResponse['response']['status']): AdmissionReviewResponse => ({
    apiVersion: 'admission.k8s.io/v1', kind: 'AdmissionReview', response: { uid: request.uid!, allowed, ...(status ? { status } : {}) },
  });
  const kind = request.kind?.kind;
  if (request.kind?.group !== ADMISSION_GROUP || !isKind(kind) || request.subResource) return answer(true);
  if (request.userInfo?.username && trustedUsers.has(request.userInfo.username)) return answer(true);
  try {
    switch (request.operation) {
      case 'CREATE':
        // Validating, not mutating: the defaults are applied to a copy only to judge it as the facade would.
        await admitCreate(store, structuredClone({ ...request.object, kind } as AnyResource));
        break;
      case 'UPDATE':
        if (!request.oldObject || !request.object) throw new AdmissionReviewError('an UPDATE review carries object and oldObject');
        await admitUpdate(store, { ...request.oldObject, kind } as AnyResource, { ...request.object, kind } as AnyResource);
        break;
      case 'DELETE':
        // What it names is refused up front, as the seed's Delete* RPCs do; a delete of an object
        // already marked (its finalizers hold it) has nothing more to judge.
        if (request.oldObject && !request.oldObject.metadata?.deletionTimestamp) await admitDelete(store, { ...request.oldObject, kind } as never);
        break;
      default:
        break;
    }
    return answer(true);
  } catch (err) {
    if (err instanceof AdmissionReviewError) throw err;
    const http = isN0Error(err) ? HTTP_BY_CODE[err.code] : undefined;
    return answer(false, { ...(http ?? { code: 500, reason: 'InternalError' }), message: (err as Error).message });
  }
}
