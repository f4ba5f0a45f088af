export * from './reports.schemas';
export * from './reports.service';
