// The HTTP routes of the prompt library, the public template gallery, organizations and
// agents (docs/prompts.md, docs/protocol.md), as methods of the Client: each one request,
// answering the route's JSON (a PromptrelayError with the server's code otherwise).
// Lists answer one page, `{items, next_cursor}`; `eachItem` walks every page.

const id = (value) => encodeURIComponent(String(value));

/** `?a=1&b=x` of the given values, leaving out undefined, null and "". */
export function queryString(params) {
  const query = new URLSearchParams();
  for (const [key, value] of Object.entries(params || {})) {
    if (value !== undefined && value !== null && value !== "") query.set(key, String(value));
  }
  const text = query.toString();
  return text ? `?${text}` : "";
}

/** Every item of a paged list: `fetchPage(cursor)` answers `{items, next_cursor}`. */
export async function* eachItem(fetchPage) {
  let cursor = null;
  do {
    const page = await fetchPage(cursor);
    yield* page.items;
    cursor = page.next_cursor;
  } while (cursor);
}

/** The methods Client.prototype gets; `this._http(path, {method, body})` makes the call. */
export const libraryMethods = {
  // -- prompts --
  /** `GET /v1/prompts`: `owner` "me", "org:<id>" or "project:<id>"; `status`, `tag`, `q`,
   * `limit` (1-200), `cursor`. */
  listPrompts(filters = {}) {
    const { owner, status, tag, q, limit, cursor } = filters;
    return this._http(`/v1/prompts${queryString({ owner, status, tag, q, limit, cursor })}`);
  },
  createPrompt(body) {
    return this._http("/v1/prompts", { method: "POST", body });
  },
  /** One prompt, at its latest version or at `version`. */
  getPrompt(promptId, version) {
    const at = version === undefined ? "" : `/versions/${id(version)}`;
    return this._http(`/v1/prompts/${id(promptId)}${at}`);
  },
  updatePrompt(promptId, body) {
    return this._http(`/v1/prompts/${id(promptId)}`, { method: "PATCH", body });
  },
  /** Make `version` the one `execute` runs unpinned. */
  publishPrompt(promptId, version) {
    return this._http(`/v1/prompts/${id(promptId)}/versions/${id(version)}/publish`, { method: "POST" });
  },
  archivePrompt(promptId) {
    return this._http(`/v1/prompts/${id(promptId)}/archive`, { method: "POST" });
  },
  deletePrompt(promptId) {
    return this._http(`/v1/prompts/${id(promptId)}`, { method: "DELETE" });
  },

  // -- the public template gallery --
  /** `GET /v1/templates`: `q` searches name and description; `tag`, `category` filter. */
  listTemplates(filters = {}) {
    const { q, tag, category, limit, cursor } = filters;
    return this._http(`/v1/templates${queryString({ q, tag, category, limit, cursor })}`);
  },
  getTemplate(templateId) {
    return this._http(`/v1/templates/${id(templateId)}`);
  },
  /** A new draft prompt from the template's current version (`name`, `org_id`, `project_id`). */
  forkTemplate(templateId, body = {}) {
    return this._http(`/v1/templates/${id(templateId)}/fork`, { method: "POST", body });
  },
  /** Publish (or re-point) a prompt's version as a public template. */
  publishTemplate(promptId, version, body = {}) {
    return this._http(`/v1/prompts/${id(promptId)}/versions/${id(version)}/template`, { method: "POST", body });
  },
  unpublishTemplate(promptId) {
    return this._http(`/v1/prompts/${id(promptId)}/template`, { method: "DELETE" });
  },
  /** The prompt's template with its fork and run counts (admins of the prompt only). */
  templateStats(promptId) {
    return this._http(`/v1/prompts/${id(promptId)}/template`);
  },

  // -- organizations (the owners of team prompts and agents) --
  createOrg(body) {
    return this._http("/v1/orgs", { method: "POST", body });
  },
  listOrgs(paging = {}) {
    return this._http(`/v1/orgs${queryString({ limit: paging.limit, cursor: paging.cursor })}`);
  },

  // -- agents --
  createAgentTemplate(body) {
    return this._http("/v1/agent-templates", { method: "POST", body });
  },
  listAgentTemplates(paging = {}) {
    return this._http(`/v1/agent-templates${queryString({ limit: paging.limit, cursor: paging.cursor })}`);
  },
  getAgentTemplate(templateId) {
    return this._http(`/v1/agent-templates/${id(templateId)}`);
  },
  createAgent(body) {
    return this._http("/v1/agents", { method: "POST", body });
  },
  listAgents(paging = {}) {
    return this._http(`/v1/agents${queryString({ limit: paging.limit, cursor: paging.cursor })}`);
  },
  getAgent(agentId) {
    return this._http(`/v1/agents/${id(agentId)}`);
  },
  updateAgent(agentId, body) {
    return this._http(`/v1/agents/${id(agentId)}`, { method: "PATCH", body });
  },
  deleteAgent(agentId) {
    return this._http(`/v1/agents/${id(agentId)}`, { method: "DELETE" });
  },
  /** `POST /v1/agents/{id}/run`: the task starts and this answers at once
   * (`{task_id, run_id, status}`); `client.subscribe(task_id)` streams it. */
  runAgent(agentId, request = {}) {
    return this._http(`/v1/agents/${id(agentId)}/run`, { method: "POST", body: request });
  },
  listAgentExecutions(agentId, paging = {}) {
    const query = queryString({ limit: paging.limit, cursor: paging.cursor });
    return this._http(`/v1/agents/${id(agentId)}/executions${query}`);
  },
};
