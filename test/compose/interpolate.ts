/**
 * Docker Compose's variable interpolation, for checking compose.yaml against each env file without Docker
 * Compose: `$$` is a literal `$`; `${VAR}` and `$VAR`; `${VAR:-default}` / `${VAR-default}`;
 * `${VAR:?message}` / `${VAR?message}` fail with the message ("required variable VAR is missing a value:
 * message", as compose words it); `${VAR:+alt}` / `${VAR+alt}`. Nested expressions are not supported (this
 * project's compose.yaml uses none). Comment lines are left alone.
 */

const EXPRESSION = /\$(\$|\{([A-Za-z_][A-Za-z0-9_]*)(?:(:?)([-?+])([^}]*))?\}|([A-Za-z_][A-Za-z0-9_]*))/g;

export function interpolate(text: string, vars: Record<string, string | undefined>): string {
  return text
    .split("\n")
    .map((line) => (line.trimStart().startsWith("#") ? line : interpolateLine(line, vars)))
    .join("\n");
}

function interpolateLine(line: string, vars: Record<string, string | undefined>): string {
  return line.replace(
    EXPRESSION,
    (_match, body: string, braced?: string, colon?: string, op?: string, arg?: string, bare?: string) => {
      if (body === "$") return "$";
      const name = (braced ?? bare) as string;
      const value = vars[name];
      const unset = colon ? value === undefined || value === "" : value === undefined;
      switch (op) {
        case "-":
          return unset ? (arg ?? "") : (value as string);
        case "?":
          if (unset) throw new Error(`required variable ${name} is missing a value: ${arg}`);
          return value as string;
        case "+":
          return unset ? "" : (arg ?? "");
        default:
          return value ?? "";
      }
    },
  );
}

/** Names of the variables a compose file refers to (outside comments), sorted and unique. */
export function referencedVariables(text: string): string[] {
  const names = new Set<string>();
  for (const line of text.split("\n")) {
    if (line.trimStart().startsWith("#")) continue;
    for (const m of line.matchAll(EXPRESSION)) {
      const name = m[2] ?? m[6];
      if (name) names.add(name);
    }
  }
  return [...names].sort();
}

/** An env file as compose reads it: KEY=VALUE lines, `#` comments, optional surrounding quotes. */
export function parseEnvFile(text: string): Record<string, string> {
  const vars: Record<string, string> = {};
  for (const raw of text.split("\n")) {
    const line = raw.trim();
    if (!line || line.startsWith("#")) continue;
    const m = /^(?:export\s+)?([A-Za-z_][A-Za-z0-9_]*)\s*=\s*(.*)$/.exec(line);
    if (!m) throw new Error(`not an env file line: ${raw}`);
    let value = m[2] as string;
    const quoted = /^(['"])(.*)\1$/.exec(value);
    if (quoted) value = quoted[2] as string;
    else value = value.replace(/\s+#.*$/, "");
    vars[m[1] as string] = value;
  }
  return vars;
}
