export * from './inventory.schemas';
export * from './inventory.service';
export * from './stock';
export * from './locations';
export * from './counts.schemas';
