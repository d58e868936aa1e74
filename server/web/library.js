// The library panel (docs/prompts.md): the user's prompts (GET /v1/prompts?owner=me), their
// teams' (the prompts of their orgs and projects), the public templates (GET /v1/templates,
// with Fork: POST /v1/templates/{id}/fork into the user's library) and their agents
// (GET /v1/agents). "Use" picks an entry as what the composer runs.

const SEARCH_DELAY_MS = 250;
const $ = (id) => document.getElementById(id);

const KINDS = {
  mine: { path: (q) => `/v1/prompts?owner=me&limit=100${q ? `&q=${encodeURIComponent(q)}` : ""}` },
  teams: {
    path: (q) => `/v1/prompts?limit=200${q ? `&q=${encodeURIComponent(q)}` : ""}`,
    keep: (p) => Boolean(p.org_id || p.project_id),
  },
  templates: { path: (q) => `/v1/templates?limit=100${q ? `&q=${encodeURIComponent(q)}` : ""}` },
  // The agents route has no search: the page filters by name and description itself.
  agents: { path: () => "/v1/agents?limit=200", search: true },
};

export class Library {
  /** api(path, {method, body}); onUse(value of the Prompt select, name) picks an entry. */
  constructor({ api, onUse }) {
    this.api = api;
    this.onUse = onUse;
    this.loads = 0;
    this.list = $("library-list");
    this.status = $("library-status");
    this.search = $("library-search");
    for (const radio of document.querySelectorAll('input[name="library-kind"]')) {
      radio.addEventListener("change", () => {
        this.search.value = ""; // a search of one list means little in another
        this.load();
      });
    }
    let timer = null;
    this.search.addEventListener("input", () => {
      clearTimeout(timer);
      timer = setTimeout(() => this.load(), SEARCH_DELAY_MS);
    });
    this.search.addEventListener("keydown", (event) => {
      if (event.key !== "Enter") return;
      event.preventDefault();
      clearTimeout(timer);
      this.load();
    });
  }

  kind() {
    const checked = document.querySelector('input[name="library-kind"]:checked');
    return checked ? checked.value : "mine";
  }

  say(text) {
    this.status.textContent = text;
  }

  async load() {
    const load = ++this.loads;
    const kind = this.kind();
    const spec = KINDS[kind];
    const q = this.search.value.trim();
    let items;
    try {
      ({ items } = await this.api(spec.path(q)));
    } catch (err) {
      if (load === this.loads) this.say(`Could not load the library (${err.message}).`);
      return;
    }
    if (load !== this.loads) return; // a newer load is under way
    if (spec.keep) items = items.filter(spec.keep);
    if (spec.search && q) {
      const needle = q.toLowerCase();
      items = items.filter((a) => `${a.name} ${a.description || ""}`.toLowerCase().includes(needle));
    }
    this.list.replaceChildren(...items.map((item) => this.renderItem(kind, item)));
    this.say(items.length ? "" : q ? `Nothing matches “${q}”.` : "Nothing here yet.");
  }

  renderItem(kind, item) {
    const li = document.createElement("li");
    li.className = "library-item";
    li.dataset.id = item.id;
    const title = document.createElement("div");
    title.className = "library-title";
    title.textContent = item.name;
    const about = document.createElement("div");
    about.className = "library-about";
    about.textContent = describe(kind, item);
    const actions = document.createElement("div");
    actions.className = "library-actions";
    if (kind === "templates") {
      actions.append(button("Fork", `Fork ${item.name} into my library`, () => this.fork(item)));
    } else {
      const value = kind === "agents" ? `agent:${item.id}` : `prompt:${item.id}`;
      const verb = kind === "agents" ? "Run" : "Use";
      actions.append(button(verb, `${verb} ${item.name}`, () => this.onUse(value, item.name)));
    }
    li.append(title, about, actions);
    return li;
  }

  async fork(template) {
    let fork;
    try {
      fork = await this.api(`/v1/templates/${template.id}/fork`, { method: "POST", body: {} });
    } catch (err) {
      this.say(`Could not fork “${template.name}” (${err.message}).`);
      return;
    }
    this.say(`Forked “${template.name}” into your library.`);
    await this.onUse(`prompt:${fork.id}`, fork.name);
  }
}

function describe(kind, item) {
  if (kind === "agents") {
    const runs = `${item.execution_count} run${item.execution_count === 1 ? "" : "s"}`;
    return [item.model || "template's model", runs].join(" · ");
  }
  if (kind === "templates") {
    return [item.description, item.category, `v${item.version}`].filter(Boolean).join(" · ");
  }
  const owner = item.project_id ? "project" : item.org_id ? "org" : "";
  const fork = item.forked_from ? "fork" : "";
  return [item.description, item.status, `v${item.version}`, owner, fork]
    .filter(Boolean).join(" · ");
}

function button(text, label, onClick) {
  const b = document.createElement("button");
  b.type = "button";
  b.className = "secondary small";
  b.textContent = text;
  b.setAttribute("aria-label", label);
  b.addEventListener("click", onClick);
  return b;
}
