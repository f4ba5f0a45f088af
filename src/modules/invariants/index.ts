export * from './invariants.service';
