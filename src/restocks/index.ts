export * from './restocks.schemas';
export * from './restocks.service';
