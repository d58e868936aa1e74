// Images attached to a message (docs/playground.md "Images"): a file picked or pasted is
// checked here before anything is sent (an image type the models take, by its first bytes
// as the server checks them; not over the size the server takes by default), then sent as
// an image part `{type: "image", data, media_type}` (docs/protocol.md "Images").

// The server's defaults (MAX_IMAGES, MAX_IMAGE_BYTES); a server set lower says so itself.
export const MAX_IMAGES = 8;
export const MAX_IMAGE_BYTES = 5 * 1024 * 1024;
const KINDS = "PNG, JPEG, GIF or WebP";

function startsWith(bytes, magic, at = 0) {
  return magic.every((b, i) => bytes[at + i] === b);
}

/** The media type the first bytes say, or null: as engine/protocol/content.py reads them. */
export function sniffMediaType(bytes) {
  if (startsWith(bytes, [0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a])) return "image/png";
  if (startsWith(bytes, [0xff, 0xd8, 0xff])) return "image/jpeg";
  if (startsWith(bytes, [0x47, 0x49, 0x46, 0x38]) && (bytes[4] === 0x37 || bytes[4] === 0x39)
    && bytes[5] === 0x61) return "image/gif";
  if (startsWith(bytes, [0x52, 0x49, 0x46, 0x46]) && startsWith(bytes, [0x57, 0x45, 0x42, 0x50], 8)) {
    return "image/webp";
  }
  return null;
}

function megabytes(n) {
  return `${(n / (1024 * 1024)).toFixed(1)} MB`;
}

function dataUrlOf(file) {
  return new Promise((resolve, reject) => {
    const reader = new FileReader();
    reader.onload = () => resolve(String(reader.result));
    reader.onerror = () => reject(new Error(`“${file.name}” could not be read.`));
    reader.readAsDataURL(file);
  });
}

/** A File -> {name, media_type, data (base64), size}; throws an Error saying what is wrong. */
export async function readImage(file) {
  const name = file.name || "pasted image";
  if (file.size > MAX_IMAGE_BYTES) {
    throw new Error(`“${name}” is ${megabytes(file.size)}: an image may be at most ${megabytes(MAX_IMAGE_BYTES)}.`);
  }
  const head = new Uint8Array(await file.slice(0, 12).arrayBuffer());
  const mediaType = sniffMediaType(head);
  if (!mediaType) throw new Error(`“${name}” is not an image the models take (${KINDS}).`);
  const url = await dataUrlOf(file);
  return { name, media_type: mediaType, data: url.slice(url.indexOf(",") + 1), size: file.size };
}

/** The part an execute's user message carries. */
export function imagePart(image) {
  return { type: "image", data: image.data, media_type: image.media_type };
}

/** A thumbnail (a data: URL, which the page's Content-Security-Policy allows). */
export function thumbnail(image) {
  const img = document.createElement("img");
  img.className = "thumb";
  img.alt = image.name || "attached image";
  if (image.data) img.src = `data:${image.media_type};base64,${image.data}`;
  return img;
}

/** The composer's list of attachments, each with a button that removes it. */
export function renderAttachments(images, onRemove) {
  return images.map((image, i) => {
    const li = document.createElement("li");
    const remove = document.createElement("button");
    remove.type = "button";
    remove.className = "secondary small";
    remove.textContent = "Remove";
    remove.setAttribute("aria-label", `Remove ${image.name}`);
    remove.addEventListener("click", () => onRemove(i));
    li.append(thumbnail(image), remove);
    return li;
  });
}

/** Files of a paste (a screenshot, an image copied in a browser). */
export function pastedFiles(event) {
  const items = event.clipboardData ? [...event.clipboardData.items] : [];
  return items.filter((item) => item.kind === "file").map((item) => item.getAsFile()).filter(Boolean);
}

/** Attach `files` to `images` (at most MAX_IMAGES): the messages of those refused. */
export async function attach(images, files) {
  const refused = [];
  for (const file of files) {
    if (images.length >= MAX_IMAGES) {
      refused.push(`At most ${MAX_IMAGES} images a message: “${file.name || "pasted image"}” was left out.`);
      continue;
    }
    try {
      images.push(await readImage(file));
    } catch (err) {
      refused.push(err.message);
    }
  }
  return refused;
}

/** The composer's attachments: the file input, paste into the message, the thumbnails and
 * the message saying what was refused. */
export class Attachments {
  constructor({ input, list, status, pasteTarget }) {
    this.images = [];
    this.input = input;
    this.list = list;
    this.status = status;
    input.addEventListener("change", async () => {
      const files = [...input.files];
      input.value = ""; // the same file may be picked again after a removal
      await this.add(files);
    });
    pasteTarget.addEventListener("paste", async (event) => {
      const files = pastedFiles(event);
      if (!files.length) return; // text pastes as usual
      event.preventDefault();
      await this.add(files);
    });
  }

  async add(files) {
    const refused = await attach(this.images, files);
    this.say(refused.join(" "));
    this.render();
  }

  remove(index) {
    this.images.splice(index, 1);
    this.say("");
    this.render();
  }

  clear() {
    this.images = [];
    this.render();
  }

  say(text) {
    this.status.textContent = text;
    this.status.hidden = !text;
  }

  render() {
    this.list.replaceChildren(...renderAttachments(this.images, (i) => this.remove(i)));
    this.list.hidden = this.images.length === 0;
  }
}
