// Drives the npm mailpit-api client (unchanged) against a lab's HTTP API and
// prints what it saw as JSON: node mailpit_client.mjs BASE_URL
import { MailpitClient } from "mailpit-api";

const mailpit = new MailpitClient(process.argv[2]);
const report = {};
const listed = await mailpit.listMessages();
report.list = { total: listed.total, unread: listed.unread, subjects: listed.messages.map((m) => m.Subject) };
const found = await mailpit.searchMessages({ query: 'subject:"grüße aus"' });
report.search = found.messages.map((m) => m.Subject);
const id = found.messages[0].ID;
const message = await mailpit.getMessageSummary(id);
report.message = {
  Subject: message.Subject,
  From: message.From,
  Text: message.Text,
  Attachments: message.Attachments.map((a) => a.FileName),
};
report.raw = await mailpit.getMessageSource(id);
report.headers = await mailpit.getMessageHeaders(id);
report.attachment = await (await mailpit.getMessageAttachment(id, message.Attachments[0].PartID)).text();
await mailpit.setReadStatus({ IDs: [id], Read: false });
report.unreadAfterPut = (await mailpit.listMessages()).unread;
report.info = (await mailpit.getInfo()).Messages;
await mailpit.deleteMessagesBySearch({ query: "subject:other" });
report.afterSearchDelete = (await mailpit.listMessages()).messages.map((m) => m.Subject);
await mailpit.deleteMessages({ IDs: [id] });
report.afterDelete = (await mailpit.listMessages()).total;
try {
  await mailpit.getMessageSummary("no-such-id");
  report.missing = "found";
} catch (error) {
  report.missing = String(error.message).includes("404") ? 404 : String(error.message);
}
process.stdout.write(JSON.stringify(report));
