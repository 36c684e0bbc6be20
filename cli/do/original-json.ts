// A response as the original n0cli printed it: jsonpb with the proto's own field names, enums by
// name, 64-bit integers as strings, Timestamps in RFC 3339, and every field at its proto3 default
// (empty string, 0, false, the enum's value 0, empty list or map) left out. Our added fields
// follow the same rules; an original client would not know them, but they carry exact_state.
import { messageFields, type FieldInfo } from '../proto';

const TIMESTAMP = 'google.protobuf.Timestamp';

/** jsonpb's Timestamp: 0, 3, 6 or 9 fractional digits, as many as the nanoseconds need. */
export function rfc3339(ts: { seconds?: unknown; nanos?: unknown }): string {
  const seconds = Number(ts.seconds ?? 0);
  const nanos = Number(ts.nanos ?? 0);
  const base = new Date(seconds * 1000).toISOString().replace(/\.\d{3}Z$/, '');
  if (!nanos) return `${base}Z`;
  const digits = String(nanos).padStart(9, '0');
  const cut = digits.endsWith('000000') ? 3 : digits.endsWith('000') ? 6 : 9;
  return `${base}.${digits.slice(0, cut)}Z`;
}

const isDefault = (v: unknown, field: FieldInfo): boolean =>
  v === undefined || v === null || v === '' || v === false || v === 0 || (field.kind !== 'string' && v === '0')
  || (field.kind === 'enum' && v === field.enumZero)
  || (Array.isArray(v) && v.length === 0)
  || (field.kind === 'map' && typeof v === 'object' && Object.keys(v as object).length === 0);

function value(field: FieldInfo, v: unknown): unknown {
  if (field.kind !== 'message' || v === null || typeof v !== 'object') return v;
  if (field.messageType === TIMESTAMP) return rfc3339(v as { seconds?: unknown; nanos?: unknown });
  return originalJson(field.messageType!, v as Record<string, unknown>);
}

export function originalJson(messageType: string, message: Record<string, unknown>): Record<string, unknown> {
  const fields = messageFields(messageType);
  const out: Record<string, unknown> = {};
  // In the message's field order, as jsonpb prints (the seed's `n0cli get node` starts with name).
  for (const [name, field] of fields) {
    const v = message[name];
    if (isDefault(v, field)) continue;
    if (field.kind === 'map') {
      const entries = Object.entries(v as Record<string, unknown>).map(([k, x]) => [k, value(field.mapValue!, x)]);
      out[name] = Object.fromEntries(entries);
    } else if (field.repeated) {
      out[name] = (v as unknown[]).map((x) => value(field, x));
    } else {
      out[name] = value(field, v);
    }
  }
  return out;
}

/** grpc-go's Code.String(): NOT_FOUND -> NotFound, CANCELLED -> Canceled. */
export function goCodeName(codeName: string): string {
  if (codeName === 'CANCELLED') return 'Canceled';
  if (codeName === 'OK') return 'OK';
  return codeName.toLowerCase().replace(/(^|_)([a-z])/g, (_, __, c: string) => c.toUpperCase());
}
