// The consultation chat, shared by the patient and the doctor pages. Messages are keyed by the
// server's per-consultation seq; a message typed while offline stays "sending" and is resent
// with the same client_message_id after a reconnect (the server answers a resend with the
// original seq), and the subscription resumes after the highest seq we have: nothing is lost,
// nothing is shown twice.
import { html } from "./html.js";
import { useEffect, useRef, useState } from "preact/hooks";
import { api, blobUrl } from "./api.js";
import { call, onOpen, subscribe } from "./ws.js";
import { addMessages, errorText, formatTime, t } from "./i18n.js";

addMessages({
  ru: {
    "chat.title": "Чат с врачом",
    "chat.titleDoctor": "Чат с пациентом",
    "chat.placeholder": "Сообщение",
    "chat.send": "Отправить",
    "chat.attach": "Прикрепить фото",
    "chat.sending": "отправляется…",
    "chat.failed": "не отправлено",
    "chat.empty": "Сообщений пока нет.",
    "chat.typing": "Собеседник печатает…",
    "chat.readonly": "Чат закрыт для новых сообщений.",
    "chat.you": "Вы",
    "chat.image": "Изображение из чата",
    "chat.log": "Сообщения",
  },
  en: {
    "chat.title": "Chat with the doctor",
    "chat.titleDoctor": "Chat with the patient",
    "chat.placeholder": "Message",
    "chat.send": "Send",
    "chat.attach": "Attach a photo",
    "chat.sending": "sending…",
    "chat.failed": "not sent",
    "chat.empty": "No messages yet.",
    "chat.typing": "The other side is typing…",
    "chat.readonly": "The chat is closed for new messages.",
    "chat.you": "You",
    "chat.image": "Image from the chat",
    "chat.log": "Messages",
  },
});

const clientId = () => (crypto.randomUUID ? crypto.randomUUID() : String(Date.now() + Math.random())).replace(/[^A-Za-z0-9_-]/g, "");

function Attachment({ consultationId, attachmentId }) {
  const [src, setSrc] = useState(null);
  useEffect(() => {
    let url;
    blobUrl(`/api/consultations/${consultationId}/attachments/${attachmentId}`)
      .then((u) => setSrc((url = u)))
      .catch(() => {});
    return () => url && URL.revokeObjectURL(url);
  }, [attachmentId]);
  return src ? html`<img class="chat-image" src=${src} alt=${t("chat.image")} />` : html`<span class="muted">…</span>`;
}

export function Chat({ consultationId, me, canWrite, title, onConsultationEvent }) {
  const [messages, setMessages] = useState([]); // sorted by seq
  const [outbox, setOutbox] = useState([]); // {client_message_id, text, attachment_id, state}
  const [text, setText] = useState("");
  const [typing, setTyping] = useState(false);
  const [error, setError] = useState(null);
  const lastSeq = useRef(0);
  const outboxRef = useRef([]);
  const logRef = useRef(null);
  const typingTimer = useRef(null);
  outboxRef.current = outbox;

  const addMessage = (message) => {
    if (message.seq > lastSeq.current) lastSeq.current = message.seq;
    setMessages((list) => (list.some((m) => m.seq === message.seq) ? list : [...list, message].sort((a, b) => a.seq - b.seq)));
  };

  const deliver = async (item) => {
    setOutbox((list) => list.map((m) => (m.client_message_id === item.client_message_id ? { ...m, state: "sending" } : m)));
    try {
      const fields = { consultation_id: consultationId, client_message_id: item.client_message_id };
      if (item.text) fields.text = item.text;
      if (item.attachment_id) fields.attachment_id = item.attachment_id;
      const result = await call("chat.send", fields);
      addMessage({ ...item, seq: result.seq, id: result.id, sender_role: me, created_at: result.created_at, kind: item.attachment_id ? "attachment" : "text" });
      setOutbox((list) => list.filter((m) => m.client_message_id !== item.client_message_id));
    } catch (err) {
      const retryable = ["disconnected", "timeout", "unavailable", "rate_limited", "too_many_pending"].includes(err.code);
      setOutbox((list) => list.map((m) => (m.client_message_id === item.client_message_id ? { ...m, state: retryable ? "queued" : "failed" } : m)));
      if (!retryable) setError(err);
    }
  };

  useEffect(() => {
    lastSeq.current = 0;
    setMessages([]);
    const stop = subscribe(
      "consultation.subscribe",
      () => ({ consultation_id: consultationId, after_seq: lastSeq.current }),
      (event) => {
        if (event.type === "chat.message") addMessage(event);
        else if (event.type === "chat.typing") {
          setTyping(event.typing);
          clearTimeout(typingTimer.current);
          if (event.typing) typingTimer.current = setTimeout(() => setTyping(false), 6000);
        } else if (onConsultationEvent) onConsultationEvent(event);
      },
    );
    const stopOpen = onOpen(() => {
      for (const item of outboxRef.current) if (item.state !== "failed") deliver(item);
    });
    return () => {
      stop();
      stopOpen();
    };
  }, [consultationId]);

  useEffect(() => {
    const log = logRef.current;
    if (log) log.scrollTop = log.scrollHeight;
  }, [messages.length, outbox.length]);

  const queue = (item) => {
    const entry = { client_message_id: clientId(), state: "queued", ...item };
    setOutbox((list) => [...list, entry]);
    deliver(entry);
  };

  const submit = (event) => {
    event.preventDefault();
    const value = text.trim();
    if (!value) return;
    setText("");
    setError(null);
    call("chat.typing", { consultation_id: consultationId, typing: false }).catch(() => {});
    queue({ text: value });
  };

  const attach = async (event) => {
    const file = event.target.files[0];
    event.target.value = "";
    if (!file) return;
    setError(null);
    const form = new FormData();
    form.append("file", file);
    try {
      const uploaded = await api("POST", `/api/consultations/${consultationId}/attachments`, { form });
      queue({ attachment_id: uploaded.attachment_id });
    } catch (err) {
      setError(err);
    }
  };

  const onInput = (event) => {
    setText(event.target.value);
    call("chat.typing", { consultation_id: consultationId, typing: event.target.value.length > 0 }).catch(() => {});
  };

  const bubble = (m, pendingState) => {
    const mine = m.sender_role === me || Boolean(pendingState);
    return html`<li class=${"msg " + (mine ? "msg-mine" : "msg-theirs")} data-seq=${m.seq || ""}>
      <span class="visually-hidden">${mine ? t("chat.you") : ""}</span>
      ${m.attachment_id && html`<${Attachment} consultationId=${consultationId} attachmentId=${m.attachment_id} />`}
      ${m.text && html`<p class="msg-text">${m.text}</p>`}
      <span class="msg-meta">${pendingState ? t(pendingState === "failed" ? "chat.failed" : "chat.sending") : formatTime(m.created_at)}</span>
    </li>`;
  };

  return html`<section class="card chat" aria-labelledby="chat-title">
    <h2 class="card-title" id="chat-title">${title || t("chat.title")}</h2>
    <ol class="chat-log" ref=${logRef} aria-label=${t("chat.log")} aria-live="polite" tabindex="0">
      ${messages.length === 0 && outbox.length === 0 && html`<li class="muted">${t("chat.empty")}</li>`}
      ${messages.map((m) => bubble(m, null))}
      ${outbox.map((m) => bubble(m, m.state === "failed" ? "failed" : "sending"))}
    </ol>
    ${typing && html`<p class="muted small" role="status">${t("chat.typing")}</p>`}
    ${error && html`<div class="alert alert-error" role="alert">${errorText(error)}</div>`}
    ${canWrite
      ? html`<form class="chat-form" onSubmit=${submit}>
          <label class="visually-hidden" for=${"chat-input-" + consultationId}>${t("chat.placeholder")}</label>
          <input id=${"chat-input-" + consultationId} class="chat-input" autocomplete="off" maxlength="4000"
            placeholder=${t("chat.placeholder")} value=${text} onInput=${onInput} />
          <label class="btn btn-ghost file-btn">
            <span>${t("chat.attach")}</span>
            <input type="file" accept="image/jpeg,image/png,image/webp" class="visually-hidden" onChange=${attach} />
          </label>
          <button class="btn btn-primary" type="submit">${t("chat.send")}</button>
        </form>`
      : html`<p class="muted">${t("chat.readonly")}</p>`}
  </section>`;
}
