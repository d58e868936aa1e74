// What to run: ad hoc, a builtin (GET /v1/builtins), one of the prompts the user may read
// (GET /v1/prompts: their own, their teams', their forks) or an agent (GET /v1/agents). The
// choice is the "Prompt" select; picking one builds a form from its variable definitions.

import { variableField } from "./view.js";

const $ = (id) => document.getElementById(id);

export class Catalog {
  /** api(path) -> parsed JSON */
  constructor({ api }) {
    this.api = api;
    this.entries = new Map(); // option value -> {kind, ref, text, variables, version?}
    this.select = $("source");
    this.select.addEventListener("change", () => this.onChange());
  }

  entry() {
    return this.entries.get(this.select.value);
  }

  addGroup(label, entries) {
    this.select.querySelectorAll(`optgroup[label="${label}"]`).forEach((g) => g.remove());
    if (!entries.length) return;
    const group = document.createElement("optgroup");
    group.label = label;
    for (const entry of entries) {
      const option = document.createElement("option");
      option.value = entry.value;
      option.textContent = entry.text;
      group.append(option);
      this.entries.set(entry.value, entry);
    }
    this.select.append(group);
  }

  async load() {
    const selected = this.select.value;
    try {
      const { items } = await this.api("/v1/builtins");
      this.addGroup("Builtins", items.map((b) => ({
        value: `builtin:${b.name}`, text: `${b.name}: ${b.description || ""}`.trim(),
        kind: "builtin", ref: b.name, variables: b.variables || [],
      })));
    } catch (_) {
      this.addGroup("Builtins", [{ value: "builtin:*", text: "Builtin by name…", kind: "builtin",
        ref: null, variables: null }]);
    }
    try {
      const { items } = await this.api("/v1/prompts?limit=100");
      this.addGroup("Prompts", items.map((p) => ({
        value: `prompt:${p.id}`, text: p.name || p.id, kind: "prompt", ref: p.id,
        variables: p.variables || null,
        // A draft (a fresh fork, say) has no published version: run its latest one.
        version: p.published_version === null ? p.latest_version : undefined,
      })));
    } catch (_) { /* no prompt library on this server */ }
    try {
      const { items } = await this.api("/v1/agents?limit=100");
      this.addGroup("Agents", items.map((a) => ({
        value: `agent:${a.id}`, text: `Agent: ${a.name}`, kind: "agent", ref: a.id,
        template: a.template_id, values: a.variables || {}, variables: null,
      })));
    } catch (_) { /* no agents on this server */ }
    if (this.entries.has(selected)) this.select.value = selected;
    await this.onChange();
  }

  /** Select an entry (the library's "Use"); reloads the lists when it is new. */
  async choose(value) {
    if (!this.entries.has(value)) await this.load();
    if (!this.entries.has(value)) return false;
    this.select.value = value;
    await this.onChange();
    return true;
  }

  async onChange() {
    const entry = this.entry();
    $("builtin-name-field").hidden = !(entry && entry.kind === "builtin" && !entry.ref);
    if (entry && !entry.variables && entry.kind === "prompt") {
      try {
        entry.variables = (await this.api(`/v1/prompts/${entry.ref}`)).variables || [];
      } catch (_) { entry.variables = []; }
    }
    if (entry && !entry.variables && entry.kind === "agent") {
      try {
        const template = await this.api(`/v1/agent-templates/${entry.template}`);
        // The agent's own values fill those variables already; the form asks for the rest.
        entry.variables = (template.variables || []).filter((v) => !(v.name in entry.values));
      } catch (_) { entry.variables = []; }
    }
    this.renderVariables(entry && entry.variables ? entry.variables : []);
  }

  renderVariables(definitions) {
    const box = $("variable-fields");
    box.replaceChildren();
    $("variables").hidden = definitions.length === 0;
    for (const def of definitions) box.append(variableField(def));
  }

  variableValues() {
    const values = {};
    for (const input of document.querySelectorAll("[data-variable]")) {
      const type = input.dataset.type;
      if (type === "boolean") values[input.dataset.variable] = input.checked;
      else if (input.value === "") continue; // the server names what is missing
      else if (type === "number") values[input.dataset.variable] = Number(input.value);
      else values[input.dataset.variable] = input.value;
    }
    return values;
  }

  /** The request's fields for the chosen entry: builtin, prompt_id (+version) or agent_id. */
  requestFields() {
    const entry = this.entry();
    if (!entry || entry.kind === "adhoc") return {};
    const fields = { variables: this.variableValues() };
    if (entry.kind === "builtin") fields.builtin = entry.ref || $("builtin-name").value.trim();
    if (entry.kind === "prompt") {
      fields.prompt_id = entry.ref;
      if (entry.version !== undefined) fields.version = entry.version;
    }
    if (entry.kind === "agent") fields.agent_id = entry.ref;
    return fields;
  }

  /** How the request shows in the transcript when it has no message of its own. */
  label() {
    const entry = this.entry();
    return entry ? entry.text : "prompt";
  }
}
