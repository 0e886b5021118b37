/** What a config reload came to: the models now served and what changed, or every problem that kept the old config. */
export type ReloadResult =
  | {
      readonly ok: true;
      readonly models: string[];
      readonly added: string[];
      readonly removed: string[];
      /** Versions that kept their loaded backend (unchanged backend settings). */
      readonly reused: number;
      readonly restartNeeded: string[];
    }
  | { readonly ok: false; readonly problems: string[] };
