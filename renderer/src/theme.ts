/** Light and dark themes: the system's choice unless the user toggled one (kept in localStorage). */
export type Theme = 'light' | 'dark';
const KEY = 'wasmvisor.theme';
const listeners: ((t: Theme) => void)[] = [];

function systemTheme(): Theme {
  return matchMedia('(prefers-color-scheme: dark)').matches ? 'dark' : 'light';
}

export function currentTheme(): Theme {
  return document.documentElement.dataset.theme === 'dark' ? 'dark' : 'light';
}

function apply(t: Theme): void {
  document.documentElement.dataset.theme = t;
  for (const f of listeners) f(t);
}

export function initTheme(): void {
  const saved = localStorage.getItem(KEY);
  apply(saved === 'dark' || saved === 'light' ? saved : systemTheme());
  matchMedia('(prefers-color-scheme: dark)').addEventListener('change', () => {
    if (!localStorage.getItem(KEY)) apply(systemTheme());
  });
}

export function toggleTheme(): void {
  const t = currentTheme() === 'dark' ? 'light' : 'dark';
  localStorage.setItem(KEY, t);
  apply(t);
}

export function onThemeChange(f: (t: Theme) => void): void {
  listeners.push(f);
}

/** A CSS custom property's value, for libraries that take colors as strings. */
export function cssVar(name: string): string {
  return getComputedStyle(document.documentElement).getPropertyValue(name).trim();
}
