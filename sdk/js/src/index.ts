export { VexilWebProvider, type VexilWebProviderOptions } from './provider';
export { EventDelivery, type EventDeliveryOptions, type EventStats, type Channel, type PageLifecycle, type Timers } from './events';
