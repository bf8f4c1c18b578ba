// Every property test is reproducible: fast-check runs that name no seed of their own use this one (a failure
// prints its seed and path; FC_SEED reruns with another seed on purpose).
import fc from 'fast-check';

fc.configureGlobal({ seed: Number(process.env['FC_SEED'] ?? 20261126) });
