// promptrelay-client: `import { createClient } from "promptrelay-client"`.
export { Client, createClient } from "./client.js";
export { ClientClosedError, PromptrelayError } from "./errors.js";
export { eachItem } from "./library.js";
export { TaskHandle } from "./task.js";
