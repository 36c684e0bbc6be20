// Objects shared by many readers (the controllers' informer caches, the facade's watch fan-out)
// are frozen, so one reader cannot change what the others see: mutate a structuredClone.
export function deepFreeze<T>(value: T): T {
  if (value && typeof value === 'object' && !Object.isFrozen(value)) {
    Object.freeze(value);
    for (const v of Object.values(value)) deepFreeze(v);
  }
  return value;
}
