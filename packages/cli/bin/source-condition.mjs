// A module resolve hook: every import resolves with the `@attnopt/source` export condition, so the workspace
// packages load from their TypeScript sources (what `node --conditions=@attnopt/source` does, set from inside).
const CONDITION = '@attnopt/source';

export async function resolve(specifier, context, nextResolve) {
  const conditions = context.conditions.includes(CONDITION) ? context.conditions : [...context.conditions, CONDITION];
  return nextResolve(specifier, { ...context, conditions });
}
