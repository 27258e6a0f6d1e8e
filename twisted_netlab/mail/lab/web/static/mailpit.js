// The inbox's Mailpit features, beside app.js: tags (on each row, in the
// message view with add and remove, a filter by tag), the Release dialog
// (through the lab's --relay), mobile and tablet widths for the HTML view,
// browser notifications of new mail once allowed, and List-Unsubscribe as
// Mailpit checks it.  app.js calls the hooks below; nothing here keeps a
// copy of the list.
//
// The safety rule of app.js holds here too: mail data only ever reaches the
// page as textContent or inert attribute values, never as markup, and no
// link from mail is made clickable.

const $ = (id) => document.getElementById(id);

function el(tag, { text, cls, attrs } = {}, ...children) {
  const node = document.createElement(tag);
  if (text !== undefined && text !== null) node.textContent = String(text);
  if (cls) node.className = cls;
  for (const [name, value] of Object.entries(attrs || {})) node.setAttribute(name, value);
  for (const child of children) if (child) node.append(child);
  return node;
}

async function send(path, method, body) {
  const response = await fetch(path, {
    method,
    credentials: "same-origin",
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify(body),
  });
  const text = (await response.text()).trim();
  if (!response.ok) {
    let reason = text || `${response.status} ${response.statusText}`;
    try {
      reason = JSON.parse(text).Error || reason;
    } catch {
      // plain text, as Mailpit's errors are
    }
    throw new Error(reason.split("\n")[0]);
  }
  return text;
}

const hooks = {
  search: () => {},
  reload: () => {},
};
let current = null; // the message shown (its detail), or null
let known = []; // every tag in use, from the last list page
let relayEnabled = false;

// ---------------------------------------------------------------- tags

/** The search for one tag: tag:NAME, quoted when it has a space. */
export function tagQuery(name) {
  return /\s/.test(name) ? `tag:"${name}"` : `tag:${name}`;
}

function chip(name, onClick) {
  const button = el("button", {
    cls: "tag",
    text: name,
    attrs: { type: "button", title: `Messages tagged ${name}`, "data-tag": name },
  });
  button.addEventListener("click", (event) => {
    event.stopPropagation();
    onClick(name);
  });
  return button;
}

/** Puts a row's tags in it (app.js's rowFor calls this for each row). */
export function decorateRow(row, message) {
  const tags = message.Tags || [];
  if (!tags.length) return;
  const box = el("span", { cls: "tags" }, ...tags.map((t) => chip(t, (n) => hooks.search(tagQuery(n)))));
  const size = row.querySelector(".line2 .size");
  row.querySelector(".line2").insertBefore(box, size);
}

/** A list page arrived: its tags fill the filter. */
export function pageLoaded(page, query) {
  known = page.tags || [];
  const select = $("tag-filter");
  const chosen = known.find((t) => tagQuery(t) === query) || "";
  select.replaceChildren(el("option", { text: "All tags", attrs: { value: "" } }));
  for (const name of known) select.append(el("option", { text: name, attrs: { value: name } }));
  select.value = chosen;
  select.closest("label").hidden = known.length === 0;
  const list = $("known-tags");
  list.replaceChildren(...known.map((t) => el("option", { attrs: { value: t } })));
}

async function setTags(message, tags) {
  await send("api/v1/tags", "PUT", { IDs: [message.ID], Tags: tags });
  message.Tags = tags;
  renderTags(message);
  hooks.reload();
}

function renderTags(message) {
  const box = $("message-tags");
  const tags = message.Tags || [];
  box.replaceChildren(
    ...tags.map((name) => {
      const remove = el("button", {
        cls: "remove",
        text: "×",
        attrs: { type: "button", "aria-label": `Remove tag ${name}`, title: `Remove tag ${name}` },
      });
      remove.addEventListener("click", () =>
        setTags(message, tags.filter((t) => t !== name)).catch(showTagError),
      );
      return el("span", { cls: "tag-edit", attrs: { "data-tag": name } }, chip(name, (n) => hooks.search(tagQuery(n))), remove);
    }),
  );
  $("tag-error").hidden = true;
}

function showTagError(error) {
  const box = $("tag-error");
  box.hidden = false;
  box.textContent = error.message;
}

// ---------------------------------------------------------------- release

function releaseRecipients(message) {
  const envelope = message.Envelope;
  if (envelope && envelope.RcptTo && envelope.RcptTo.length) return envelope.RcptTo;
  return [...(message.To || []), ...(message.Cc || []), ...(message.Bcc || [])].map((a) => a.Address);
}

function openRelease() {
  if (!current) return;
  $("release-to").value = releaseRecipients(current).join(", ");
  $("release-error").hidden = true;
  $("release-error").textContent = "";
  $("release-dialog").showModal();
  $("release-to").focus();
}

async function release(event) {
  event.preventDefault();
  const message = current;
  if (!message) return;
  const to = $("release-to")
    .value.split(/[,\s]+/)
    .map((a) => a.trim())
    .filter(Boolean);
  if (!to.length) {
    $("release-error").hidden = false;
    $("release-error").textContent = "Name at least one recipient.";
    return;
  }
  $("release-send").disabled = true;
  try {
    await send(`api/v1/message/${encodeURIComponent(message.ID)}/release`, "POST", { To: to });
    $("release-dialog").close();
    const note = $("release-note");
    note.hidden = false;
    note.textContent = `Released to ${to.join(", ")}.`;
  } catch (error) {
    $("release-error").hidden = false;
    $("release-error").textContent = error.message;
  } finally {
    $("release-send").disabled = false;
  }
}

// ---------------------------------------------------------------- the view

/** The message view shows a message (app.js's renderMessage calls this). */
export function showMessage(message) {
  current = message;
  renderTags(message);
  $("tag-editor").hidden = false;
  $("release").hidden = !relayEnabled;
  $("release-note").hidden = true;
  const unsubscribe = message.ListUnsubscribe || {};
  const box = $("unsubscribe");
  box.hidden = !unsubscribe.Header;
  $("unsubscribe-links").replaceChildren(
    ...(unsubscribe.Links || []).map((link) => el("li", {}, el("code", { text: link }))),
  );
  $("unsubscribe-post").textContent = unsubscribe.HeaderPost ? `One-click: ${unsubscribe.HeaderPost}` : "";
  const errors = $("unsubscribe-errors");
  errors.textContent = unsubscribe.Errors || "";
  errors.hidden = !unsubscribe.Errors;
  box.classList.toggle("bad", Boolean(unsubscribe.Errors));
}

/** The message view is emptied. */
export function clearMessage() {
  current = null;
  $("message-tags").replaceChildren();
  $("tag-editor").hidden = true;
  $("unsubscribe").hidden = true;
  $("release").hidden = true;
}

/** An update event: a message's tags changed elsewhere (IMAP, the API). */
export function updated({ ID, Tags }) {
  if (current && current.ID === ID && Array.isArray(Tags)) {
    current.Tags = Tags;
    renderTags(current);
  }
}

// ---------------------------------------------------------------- widths

const WIDTHS = { desktop: "", tablet: "768px", mobile: "375px" };

function setWidth(name) {
  const frame = $("html-frame");
  frame.style.width = WIDTHS[name];
  frame.dataset.width = name;
  for (const button of document.querySelectorAll("[data-width]")) {
    if (button === frame) continue;
    button.setAttribute("aria-pressed", String(button.dataset.width === name));
  }
}

// ---------------------------------------------------------------- notifications

const NOTIFY_KEY = "netlab-inbox-notify";

function notificationsOn() {
  return "Notification" in window && Notification.permission === "granted" && localStorage.getItem(NOTIFY_KEY) === "on";
}

function renderNotify() {
  const button = $("notify");
  if (!("Notification" in window) || Notification.permission === "denied") {
    button.hidden = true;
    return;
  }
  const on = notificationsOn();
  button.setAttribute("aria-pressed", String(on));
  button.title = on ? "Notifications of new mail are on" : "Notify me of new mail";
  button.textContent = on ? "Notifying" : "Notify";
}

async function toggleNotify() {
  if (notificationsOn()) {
    localStorage.setItem(NOTIFY_KEY, "off");
  } else {
    const answer = await Notification.requestPermission();
    localStorage.setItem(NOTIFY_KEY, answer === "granted" ? "on" : "off");
  }
  renderNotify();
}

/** A new message arrived (the event stream's new event). */
export function arrived(summary) {
  if (!notificationsOn()) return;
  const from = summary.From ? summary.From.Name || summary.From.Address : "";
  // Text only: a notification shows no markup, and no icon comes from mail.
  const notification = new Notification(summary.Subject || "(no subject)", {
    body: from ? `from ${from}` : "",
    tag: summary.ID,
  });
  notification.addEventListener("click", () => {
    window.focus();
    hooks.open(summary.ID);
  });
}

// ---------------------------------------------------------------- wiring

/** Wires the controls; the hooks search, reload the list and open a message. */
export async function init({ search, reload, open }) {
  Object.assign(hooks, { search, reload, open });
  $("tag-filter").addEventListener("change", () => {
    const name = $("tag-filter").value;
    search(name ? tagQuery(name) : "");
  });
  $("tag-add").addEventListener("submit", (event) => {
    event.preventDefault();
    const input = $("tag-input");
    const name = input.value.trim();
    if (!current || !name) return;
    const tags = [...(current.Tags || [])];
    if (!tags.some((t) => t.toLowerCase() === name.toLowerCase())) tags.push(name);
    setTags(current, tags)
      .then(() => {
        input.value = "";
      })
      .catch(showTagError);
  });
  $("release").addEventListener("click", openRelease);
  $("release-form").addEventListener("submit", release);
  $("release-cancel").addEventListener("click", () => $("release-dialog").close());
  for (const button of document.querySelectorAll("button[data-width]")) {
    button.addEventListener("click", () => setWidth(button.dataset.width));
  }
  setWidth("desktop");
  $("notify").addEventListener("click", () => toggleNotify());
  renderNotify();
  try {
    const response = await fetch("api/v1/webui", { credentials: "same-origin" });
    const config = await response.json();
    relayEnabled = Boolean(config.MessageRelay && config.MessageRelay.Enabled);
    if (relayEnabled && config.MessageRelay.AllowedRecipients) {
      $("release-allowed").textContent = `Allowed recipients: ${config.MessageRelay.AllowedRecipients}`;
    }
  } catch {
    relayEnabled = false;
  }
  if (current) $("release").hidden = !relayEnabled;
}
