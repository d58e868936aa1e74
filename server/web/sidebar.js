// The conversation sidebar: the caller's runs (GET /v1/runs), most recently active first,
// with search (?q=), rename and archive (PATCH), delete (DELETE) and resume (a click); a
// toggle shows the archived ones instead. Kept in step with
// other tabs by the Socket.IO event `runs_changed` (docs/conversations.md).

const PAGE = 50;
const SEARCH_DELAY_MS = 250;

export class Sidebar {
  /** api(path, {method, body}) -> parsed JSON (null for 204); onOpen(run_id), onDeleted(run_id) */
  constructor({ api, onOpen, onDeleted }) {
    this.api = api;
    this.onOpen = onOpen;
    this.onDeleted = onDeleted;
    this.runs = []; // as GET /v1/runs lists them, in its order
    this.cursor = null;
    this.activeId = null;
    this.loads = 0; // a newer load makes an older answer stale
    this.list = document.getElementById("runs");
    this.search = document.getElementById("run-search");
    this.more = document.getElementById("runs-more");
    this.status = document.getElementById("runs-status");
    this.archivedToggle = document.getElementById("runs-archived");
    this.archivedToggle.addEventListener("change", () => this.reload());
    let timer = null;
    this.search.addEventListener("input", () => {
      clearTimeout(timer);
      timer = setTimeout(() => this.reload(), SEARCH_DELAY_MS);
    });
    this.search.addEventListener("keydown", (event) => {
      if (event.key === "Enter") {
        event.preventDefault();
        clearTimeout(timer);
        this.reload();
      }
    });
    this.more.addEventListener("click", () => this.load(this.cursor));
  }

  query() {
    return this.search.value.trim();
  }

  /** True while the list shows archived conversations instead of active ones. */
  showingArchived() {
    return this.archivedToggle.checked;
  }

  reload() {
    return this.load(null);
  }

  async load(cursor) {
    const load = ++this.loads;
    const params = new URLSearchParams({ limit: String(PAGE) });
    if (cursor) params.set("cursor", cursor);
    if (this.query()) params.set("q", this.query());
    params.set("archived", this.showingArchived() ? "true" : "false");
    let page;
    try {
      page = await this.api(`/v1/runs?${params}`);
    } catch (err) {
      if (load !== this.loads) return;
      this.status.textContent = `Could not load conversations (${err.message}).`;
      return;
    }
    if (load !== this.loads) return;
    const known = cursor ? this.runs : [];
    const seen = new Set(known.map((r) => r.id));
    this.runs = known.concat(page.items.filter((r) => !seen.has(r.id)));
    this.cursor = page.next_cursor;
    this.render();
  }

  setActive(runId) {
    this.activeId = runId;
    for (const li of this.list.children) {
      const active = li.dataset.runId === runId;
      li.classList.toggle("active", active);
      const open = li.querySelector(".run-open");
      if (active) open.setAttribute("aria-current", "true");
      else open.removeAttribute("aria-current");
    }
  }

  /** A run this tab just started, or `runs_changed` from any tab of this key. */
  onChange({ run_id: runId, change, run }) {
    if (change === "deleted") {
      this.runs = this.runs.filter((r) => r.id !== runId);
      this.render();
      this.onDeleted(runId);
      return;
    }
    if (!run) return;
    const index = this.runs.findIndex((r) => r.id === runId);
    if (Boolean(run.archived) !== this.showingArchived()) {
      // archived (or brought back) here or in another tab: it leaves this list
      if (index >= 0) {
        this.runs.splice(index, 1);
        this.render();
      }
      return;
    }
    if (index >= 0) {
      if (change !== "created") this.runs[index] = run; // a list already loaded is newer
    } else if (change === "created" && !this.query()) {
      this.runs.unshift(run);
    } else {
      this.reload(); // the server decides whether it matches the search, and where it goes
      return;
    }
    this.render();
  }

  remove(runId) {
    this.onChange({ run_id: runId, change: "deleted", run: null });
  }

  render() {
    this.list.replaceChildren(...this.runs.map((run) => this.item(run)));
    this.more.hidden = !this.cursor;
    const q = this.query();
    const none = this.showingArchived() ? "No archived conversations." : "No conversations yet.";
    this.status.textContent = this.runs.length ? ""
      : q ? `No conversation contains “${q}”.` : none;
    this.setActive(this.activeId);
  }

  item(run) {
    const li = document.createElement("li");
    li.className = "run";
    li.dataset.runId = run.id;
    const open = document.createElement("button");
    open.type = "button";
    open.className = "run-open";
    const title = document.createElement("span");
    title.className = "run-title";
    title.textContent = run.title || "Untitled";
    const preview = document.createElement("span");
    preview.className = "run-preview";
    preview.textContent = run.last_message ? run.last_message.preview : "…";
    open.append(title, preview);
    open.addEventListener("click", () => this.onOpen(run.id));
    const rename = smallButton("Rename", `Rename “${run.title}”`,
      () => this.startRename(li, run));
    const archive = run.archived
      ? smallButton("Unarchive", `Unarchive “${run.title}”`, () => this.archive(run, false))
      : smallButton("Archive", `Archive “${run.title}”`, () => this.archive(run, true));
    const remove = smallButton("Delete", `Delete “${run.title}”`, () => this.delete(run));
    const actions = document.createElement("div");
    actions.className = "run-actions";
    actions.append(rename, archive, remove);
    li.append(open, actions);
    return li;
  }

  startRename(li, run) {
    const form = document.createElement("form");
    form.className = "run-rename";
    const input = document.createElement("input");
    input.type = "text";
    input.value = run.title || "";
    input.maxLength = 200;
    input.setAttribute("aria-label", "New title");
    const save = smallButton("Save", "Save the title", null);
    save.type = "submit";
    const cancel = smallButton("Cancel", "Keep the title", () => this.render());
    form.append(input, save, cancel);
    form.addEventListener("submit", async (event) => {
      event.preventDefault();
      const value = input.value.trim();
      if (!value) return;
      try {
        const body = { title: value };
        const updated = await this.api(`/v1/runs/${run.id}`, { method: "PATCH", body });
        this.onChange({ run_id: run.id, change: "updated", run: updated });
      } catch (err) {
        this.status.textContent = `Rename failed (${err.message}).`;
      }
    });
    input.addEventListener("keydown", (event) => {
      if (event.key === "Escape") this.render();
    });
    li.replaceChildren(form);
    input.focus();
    input.select();
  }

  async archive(run, archived) {
    try {
      const body = { archived };
      const updated = await this.api(`/v1/runs/${run.id}`, { method: "PATCH", body });
      this.onChange({ run_id: run.id, change: "updated", run: updated });
    } catch (err) {
      this.status.textContent = `${archived ? "Archive" : "Unarchive"} failed (${err.message}).`;
    }
  }

  async delete(run) {
    if (!confirm(`Delete “${run.title}” and all its messages? This cannot be undone.`)) return;
    try {
      await this.api(`/v1/runs/${run.id}`, { method: "DELETE" });
    } catch (err) {
      if (!/404/.test(err.message)) {
        this.status.textContent = `Delete failed (${err.message}).`;
        return;
      }
    }
    this.remove(run.id);
  }
}

function smallButton(text, label, onClick) {
  const button = document.createElement("button");
  button.type = "button";
  button.className = "secondary small";
  button.textContent = text;
  button.setAttribute("aria-label", label);
  if (onClick) button.addEventListener("click", onClick);
  return button;
}
