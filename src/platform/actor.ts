/**
 * Who caused a change: the key whose request it was (`{role, name}`, the name from API_KEYS'
 * `name@role:key`, by default the role), or the system component that did it on its own.
 */
export interface Actor {
  role: string;
  name: string;
}

export const systemActor = (component: string): Actor => ({ role: 'system', name: component });
