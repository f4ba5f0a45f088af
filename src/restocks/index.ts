export * from './restocks.schemas';
export * from './restocks.service';
export * from './inbound.schemas';
export * from './inbound.service';
