// Drives the npm mailpit-api client (unchanged) through the lab's tag, send,
// release, webui, thumbnail and info routes and prints what it saw as JSON:
// node mailpit_parity.mjs BASE_URL RELEASE_TO PNG_BASE64
import { MailpitClient } from "mailpit-api";

const [baseURL, releaseTo, png] = process.argv.slice(2);
const mailpit = new MailpitClient(baseURL);
const report = {};
const sent = await mailpit.sendMessage({
  From: { Email: "app@example.test", Name: "The App" },
  To: [{ Email: "bob@example.test", Name: "Bob" }],
  Bcc: ["alice@example.test"],
  Subject: "Sent by mailpit-api",
  Text: "plain body",
  HTML: "<p>html body</p>",
  Tags: ["From API", "beta"],
  Headers: { "X-Mailer": "mailpit-api" },
  Attachments: [{ Filename: "red.png", Content: png, ContentType: "image/png" }],
});
report.sentID = sent.ID;
const message = await mailpit.getMessageSummary(sent.ID);
report.message = {
  Subject: message.Subject,
  Tags: message.Tags,
  Bcc: message.Bcc.map((a) => a.Address),
  Username: message.Username,
  Attachments: message.Attachments.map((a) => a.FileName),
};
const thumb = await mailpit.getAttachmentThumbnail(sent.ID, message.Attachments[0].PartID);
report.thumb = { type: thumb.type, size: thumb.size };
report.tagsAfterSend = await mailpit.getTags();
await mailpit.setTags({ IDs: [sent.ID], Tags: ["one", "two"] });
report.tagsAfterSet = await mailpit.getTags();
await mailpit.renameTag("one", "first");
await mailpit.deleteTag("two");
report.tagsAfterRename = (await mailpit.getMessageSummary(sent.ID)).Tags;
report.search = (await mailpit.searchMessages({ query: "tag:first" })).messages.map((m) => m.ID);
report.notSearch = (await mailpit.searchMessages({ query: "-tag:first" })).messages.map((m) => m.ID);
report.listTags = (await mailpit.listMessages()).messages.map((m) => m.Tags).sort();
report.released = await mailpit.releaseMessage(sent.ID, { To: [releaseTo] });
try {
  await mailpit.releaseMessage(sent.ID, { To: ["someone@not-allowed.example"] });
  report.refused = "released";
} catch (error) {
  report.refused = String(error.message);
}
const config = await mailpit.getConfiguration();
report.relay = config.MessageRelay;
const info = await mailpit.getInfo();
report.stats = info.RuntimeStats;
report.infoTags = info.Tags;
process.stdout.write(JSON.stringify(report));
