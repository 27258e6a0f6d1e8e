// The message checks in the message view (docs/checks.rst): a tab per check
// (HTML, links, spam, authentication, lint) and the authentication badge.
// Everything a check reports comes from mail, so it is shown as text only
// (textContent, never markup); the checks run on the lab when a tab is
// opened, and the lab caches their answers.

/** An element with text (never markup), a class and attributes. */
function el(tag, { text, cls, attrs } = {}, ...children) {
  const node = document.createElement(tag);
  if (text !== undefined && text !== null) node.textContent = String(text);
  if (cls) node.className = cls;
  for (const [name, value] of Object.entries(attrs || {})) node.setAttribute(name, value);
  for (const child of children) if (child) node.append(child);
  return node;
}

/** The check's answer, or an Error with the lab's one-line reason. */
async function checkOf(id, route, params = "") {
  const response = await fetch(`api/v1/message/${encodeURIComponent(id)}/${route}${params}`, {
    credentials: "same-origin",
  });
  const text = await response.text();
  if (!response.ok) {
    let reason = `${response.status} ${response.statusText}`;
    try {
      reason = JSON.parse(text).Error || reason;
    } catch {
      if (text.trim()) reason = text.trim();
    }
    throw new Error(reason.split("\n")[0]);
  }
  return JSON.parse(text);
}

const percent = (value) => `${(Number(value) || 0).toFixed(1)}%`;

function table(head, rows) {
  return el(
    "table",
    { cls: "check-table" },
    el("thead", {}, el("tr", {}, ...head.map((name) => el("th", { text: name, attrs: { scope: "col" } })))),
    el("tbody", {}, ...rows.map((cells) => el("tr", {}, ...cells.map((cell) => el("td", cell))))),
  );
}

function summary(text, cls = "") {
  return el("p", { cls: `check-summary ${cls}`.trim(), text });
}

/** The HTML check: the score, the support per client family, the warnings. */
function renderHTML(answer) {
  const total = answer.Total || {};
  const families = new Map();
  for (const warning of answer.Warnings || []) {
    for (const result of warning.Results || []) {
      const family = result.Family || "?";
      const counts = families.get(family) || { yes: 0, partial: 0, no: 0 };
      const support = result.Support === "yes" || result.Support === "partial" ? result.Support : "no";
      counts[support] += 1;
      families.set(family, counts);
    }
  }
  const familyRows = [...families.entries()]
    .sort(([a], [b]) => a.localeCompare(b))
    .map(([family, c]) => {
      const all = c.yes + c.partial + c.no;
      return [
        { text: family, cls: "family" },
        { text: percent((100 * c.yes) / all), cls: "supported" },
        { text: percent((100 * c.partial) / all) },
        { text: percent((100 * c.no) / all) },
      ];
    });
  const warnings = (answer.Warnings || []).map((w) => [
    { text: w.Title || w.Slug, cls: "feature" },
    { text: w.Slug },
    { text: percent(w.Score?.Unsupported) },
  ]);
  return [
    summary(
      `Supported ${percent(total.Supported)}, partial ${percent(total.Partial)}, ` +
        `unsupported ${percent(total.Unsupported)} (${total.Tests || 0} features tested ` +
        `on ${total.Nodes || 0} elements)`,
      "html-score",
    ),
    families.size
      ? table(["Client family", "Supported", "Partial", "Unsupported"], familyRows)
      : summary("Every feature used is supported by every client."),
    warnings.length ? table(["Feature", "Slug", "Unsupported"], warnings) : null,
  ];
}

/** The link check: each URL with its status. */
function renderLinks(answer) {
  const links = answer.Links || [];
  return [
    summary(`${links.length} links, ${answer.Errors || 0} broken`, "links-summary"),
    links.length
      ? table(
          ["URL", "Status"],
          links.map((link) => [
            { text: link.URL, cls: "url" },
            {
              text: link.StatusCode ? `${link.StatusCode} ${link.Status}` : link.Status,
              cls: link.StatusCode && link.StatusCode < 400 ? "ok" : "bad",
            },
          ]),
        )
      : null,
  ];
}

/** The spam check: the score and the rules that hit. */
function renderSpam(answer) {
  if (answer.Error) return [summary(answer.Error, "bad")];
  const rules = (answer.Rules || []).map((rule) => [
    { text: Number(rule.Score).toFixed(1), cls: "score" },
    { text: rule.Name, cls: "rule" },
    { text: rule.Description },
  ]);
  return [
    summary(
      `Score ${Number(answer.Score).toFixed(1)}: ${answer.IsSpam ? "spam" : "not spam"}`,
      answer.IsSpam ? "bad spam-score" : "ok spam-score",
    ),
    rules.length ? table(["Score", "Rule", "Description"], rules) : null,
  ];
}

/** The authentication check: DKIM (each signature), SPF, DMARC and ARC. */
function renderAuth(answer) {
  const rows = (answer.DKIM || []).map((s) => [
    { text: "DKIM" },
    { text: s.Result, cls: s.Result === "pass" ? "ok" : "bad" },
    { text: [s.Domain && `d=${s.Domain}`, s.Selector && `s=${s.Selector}`, s.Reason].filter(Boolean).join(" ") },
  ]);
  if (!rows.length) rows.push([{ text: "DKIM" }, { text: "none", cls: "bad" }, { text: "no signature" }]);
  const spf = answer.SPF || {};
  rows.push([
    { text: "SPF" },
    { text: spf.Result, cls: spf.Result === "pass" ? "ok" : "bad" },
    { text: [spf.Domain, spf.Reason].filter(Boolean).join(": ") },
  ]);
  const dmarc = answer.DMARC || {};
  rows.push([
    { text: "DMARC" },
    { text: dmarc.Result, cls: dmarc.Result === "pass" ? "ok" : "bad" },
    { text: [dmarc.Domain, dmarc.Policy && `p=${dmarc.Policy}`, dmarc.Reason].filter(Boolean).join(" ") },
  ]);
  if (answer.ARC) {
    rows.push([
      { text: "ARC" },
      { text: answer.ARC.Result, cls: answer.ARC.Result === "pass" ? "ok" : "bad" },
      { text: answer.ARC.Reason || "" },
    ]);
  }
  return [table(["Method", "Result", "Details"], rows)];
}

/** The lint: each finding with its severity. */
function renderLint(answer) {
  const findings = answer.Findings || [];
  const errors = findings.filter((f) => f.Severity === "error").length;
  return [
    summary(
      `${errors} errors, ${findings.length - errors} warnings`,
      errors ? "bad lint-summary" : "ok lint-summary",
    ),
    findings.length
      ? table(
          ["Severity", "Code", "Message", "Where"],
          findings.map((f) => [
            { text: f.Severity, cls: `severity ${f.Severity === "error" ? "bad" : "warn"}` },
            { text: f.Code, cls: "code" },
            { text: f.Message },
            { text: f.Where },
          ]),
        )
      : null,
  ];
}

const CHECKS = {
  "html-check": { route: "html-check", render: renderHTML },
  "link-check": { route: "link-check", params: "?follow=false", render: renderLinks },
  "sa-check": { route: "sa-check", render: renderSpam },
  "auth-check": { route: "auth-check", render: renderAuth },
  lint: { route: "lint", render: renderLint },
};

/** The panel of check C{tab} (its C{data-panel} element). */
function panelOf(tab) {
  return document.querySelector(`[data-panel="${tab}"] .check-result`);
}

/**
 * The tab loaders of the checks, by tab name, for the message view's
 * loaders; C{isShown(message)} says whether the message is still the one
 * shown when an answer comes.
 */
export function checkLoaders(isShown) {
  const loaders = {};
  for (const [tab, check] of Object.entries(CHECKS)) {
    loaders[tab] = async (message) => {
      const panel = panelOf(tab);
      panel.replaceChildren(summary("Checking…", "pending"));
      let content;
      try {
        content = check.render(await checkOf(message.ID, check.route, check.params));
      } catch (error) {
        content = [summary(error.message, "bad check-error")];
      }
      if (isShown(message)) panel.replaceChildren(...content.filter(Boolean));
    };
  }
  return loaders;
}

/** Empty the checks' panels and the badge (another message is shown). */
export function clearChecks() {
  for (const tab of Object.keys(CHECKS)) panelOf(tab)?.replaceChildren();
  const badge = document.getElementById("auth-badge");
  badge.hidden = true;
  badge.textContent = "";
  badge.className = "badge";
  badge.removeAttribute("title");
}

/**
 * Show the authentication badge of C{message}: pass when DMARC passes (an
 * aligned DKIM or SPF pass), fail otherwise; its title gives each method's
 * result.
 */
export async function showAuthBadge(message, isShown) {
  const badge = document.getElementById("auth-badge");
  let answer;
  try {
    answer = await checkOf(message.ID, "auth-check");
  } catch (error) {
    if (!isShown(message)) return;
    badge.textContent = "auth: ?";
    badge.className = "badge unknown";
    badge.title = error.message;
    badge.hidden = false;
    return;
  }
  if (!isShown(message)) return;
  const passed = answer.DMARC?.Result === "pass";
  const dkim = (answer.DKIM || []).map((s) => s.Result).join(",") || "none";
  badge.textContent = passed ? "auth: pass" : "auth: fail";
  badge.className = `badge ${passed ? "pass" : "fail"}`;
  badge.title = `DKIM ${dkim}, SPF ${answer.SPF?.Result}, DMARC ${answer.DMARC?.Result}`;
  badge.hidden = false;
}
