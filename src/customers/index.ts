export * from './customers.schemas';
export * from './customers.service';
