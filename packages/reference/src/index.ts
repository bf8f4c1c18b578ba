export { dense } from '@attnopt/ir';
