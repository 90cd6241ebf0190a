// Audio/video calls of a consultation, following signaling/PROTOCOL.md (version 1): the doctor
// starts the call, the patient answers; perfect negotiation with the patient polite; the side
// that joins while the other is present makes the offer; `generation` numbers our connections.
// If the camera is refused the call goes on with audio only and says why; the device check
// talks to the server's echo peer.
import { html } from "./html.js";
import { useEffect, useRef, useState } from "preact/hooks";
import { call, subscribe } from "./ws.js";
import { addMessages, errorText, t } from "./i18n.js";

addMessages({
  ru: {
    "call.title": "Звонок",
    "call.startVideo": "Видеозвонок",
    "call.startAudio": "Аудиозвонок",
    "call.answer": "Ответить",
    "call.ringing": "Врач звонит вам",
    "call.waiting": "Ждём собеседника…",
    "call.connected": "Соединено",
    "call.away": "Собеседник переподключается…",
    "call.ended": "Звонок завершён",
    "call.mute": "Выключить микрофон",
    "call.unmute": "Включить микрофон",
    "call.cameraOff": "Выключить камеру",
    "call.cameraOn": "Включить камеру",
    "call.hangup": "Завершить звонок",
    "call.remote": "Видео собеседника",
    "call.local": "Ваше видео",
    "call.remoteMuted": "У собеседника выключен микрофон",
    "call.remoteNoVideo": "У собеседника выключена камера",
    "call.permissionNote": "Браузер спросит доступ к камере и микрофону. Без камеры звонок пойдёт только со звуком.",
    "call.audioOnly": "Камера недоступна ({reason}), звонок идёт только со звуком.",
    "call.noMedia": "Нет доступа к камере и микрофону ({reason}): вы будете только видеть и слышать собеседника.",
    "call.reason.NotAllowedError": "доступ запрещён в настройках браузера",
    "call.reason.NotFoundError": "устройство не найдено",
    "call.reason.NotReadableError": "устройство занято другой программой",
    "call.check": "Проверить камеру и микрофон",
    "call.checkStop": "Закончить проверку",
    "call.checkResult": "Связь с сервером: {grade}, задержка {rtt} мс",
    "call.checkExplain": "Видео уходит на сервер и возвращается: так вы увидите, как вас видит врач.",
    "call.step.ice_restart": "Связь прервалась: переподключаемся…",
    "call.step.relay_only": "Переподключаемся через сервер-ретранслятор…",
    "call.step.audio_only": "Видео не проходит: продолжаем только со звуком.",
    "call.step.choose": "Звонок не удаётся восстановить. Продолжите в чате или попросите диспетчера перезвонить пациенту по телефону.",
    "call.step.text_chat": "Звонок не удался: консультация продолжается в чате.",
    "call.step.callback_request": "Звонок не удался: диспетчер перезвонит пациенту по телефону.",
    "call.recovered": "Связь восстановлена.",
    "call.reconnecting": "Переподключение…",
    "call.stepBy": "({who})",
    "call.who.doctor": "врач",
    "call.who.patient": "пациент",
    "call.toChat": "Продолжить в чате",
    "call.askCallBack": "Попросить перезвонить",
  },
  en: {
    "call.title": "Call",
    "call.startVideo": "Video call",
    "call.startAudio": "Audio call",
    "call.answer": "Answer",
    "call.ringing": "The doctor is calling you",
    "call.waiting": "Waiting for the other side…",
    "call.connected": "Connected",
    "call.away": "The other side is reconnecting…",
    "call.ended": "The call has ended",
    "call.mute": "Mute",
    "call.unmute": "Unmute",
    "call.cameraOff": "Camera off",
    "call.cameraOn": "Camera on",
    "call.hangup": "Hang up",
    "call.remote": "The other side's video",
    "call.local": "Your video",
    "call.remoteMuted": "The other side is muted",
    "call.remoteNoVideo": "The other side's camera is off",
    "call.permissionNote": "Your browser will ask for the camera and microphone. Without the camera the call goes on with sound only.",
    "call.audioOnly": "The camera is not available ({reason}); the call goes on with sound only.",
    "call.noMedia": "No camera or microphone ({reason}): you will only see and hear the other side.",
    "call.reason.NotAllowedError": "access is blocked in the browser settings",
    "call.reason.NotFoundError": "no such device",
    "call.reason.NotReadableError": "the device is used by another program",
    "call.check": "Check camera and microphone",
    "call.checkStop": "Stop the check",
    "call.checkResult": "Connection to the server: {grade}, round trip {rtt} ms",
    "call.checkExplain": "Your video goes to the server and comes back: this is how the doctor will see you.",
    "call.step.ice_restart": "The connection dropped: reconnecting…",
    "call.step.relay_only": "Reconnecting through the relay server…",
    "call.step.audio_only": "Video does not get through: going on with sound only.",
    "call.step.choose": "The call cannot be restored. Go on in the chat, or ask the dispatcher to call the patient back by phone.",
    "call.step.text_chat": "The call failed: the consultation goes on in the chat.",
    "call.step.callback_request": "The call failed: the dispatcher will call the patient back by phone.",
    "call.recovered": "The connection is back.",
    "call.reconnecting": "Reconnecting…",
    "call.stepBy": "({who})",
    "call.who.doctor": "the doctor",
    "call.who.patient": "the patient",
    "call.toChat": "Go on in the chat",
    "call.askCallBack": "Ask for a call-back",
  },
});

const reasonText = (error) => {
  const key = `call.reason.${error && error.name}`;
  const text = t(key);
  return text === key ? String((error && error.name) || error) : text;
};

/** Camera + microphone; without the camera, audio only with the reason; without both, none. */
export async function localMedia(video) {
  if (!navigator.mediaDevices || !navigator.mediaDevices.getUserMedia) return { stream: null, notice: t("call.noMedia", { reason: "getUserMedia" }) };
  try {
    return { stream: await navigator.mediaDevices.getUserMedia({ audio: true, video }), notice: null };
  } catch (error) {
    if (video) {
      try {
        const stream = await navigator.mediaDevices.getUserMedia({ audio: true });
        return { stream, notice: t("call.audioOnly", { reason: reasonText(error) }) };
      } catch (_) {
        /* fall through */
      }
    }
    return { stream: null, notice: t("call.noMedia", { reason: reasonText(error) }) };
  }
}

function Video({ stream, muted, label, className }) {
  const ref = useRef(null);
  useEffect(() => {
    if (ref.current && ref.current.srcObject !== stream) ref.current.srcObject = stream || null;
  }, [stream]);
  return html`<video ref=${ref} class=${className} autoplay playsinline muted=${muted} aria-label=${label}></video>`;
}

const LADDER = ["ice_restart", "relay_only", "audio_only"]; // then text_chat or callback_request, chosen
const LADDER_WAIT_MS = 8000;

/** One call session: join, negotiate, follow the peer; returns a controller for the UI. */
function startSession({ consultationId, wantVideo, onState }) {
  const session = { callId: null, polite: false, pc: null, generation: 0, theirGeneration: 0, makingOffer: false, ignoreOffer: false, iceServers: [], icePolicy: "all", stream: null, ended: false, step: -1, audioOnly: false, ladderTimer: null };
  const emit = (patch) => onState((s) => ({ ...s, ...patch }));

  const send = (type, fields) => call(type, { call_id: session.callId, ...fields }).catch(() => {});

  function newConnection() {
    if (session.pc) session.pc.close();
    session.generation = Math.max(session.generation, session.theirGeneration) + 1;
    const generation = session.generation;
    const pc = new RTCPeerConnection({ iceServers: session.iceServers, iceTransportPolicy: session.icePolicy });
    session.pc = pc;
    session.makingOffer = false;
    session.ignoreOffer = false;
    const remote = new MediaStream();
    emit({ remote, connected: false });
    pc.ontrack = (event) => {
      remote.addTrack(event.track);
      emit({ remote: new MediaStream(remote.getTracks()) });
    };
    pc.onicecandidate = ({ candidate }) => {
      if (pc !== session.pc) return;
      if (!candidate) send("call.end_of_candidates", { generation });
      else if (candidate.candidate) send("call.candidate", { candidate: candidate.toJSON(), generation });
    };
    pc.onconnectionstatechange = () => {
      if (pc !== session.pc) return;
      const state = pc.connectionState;
      emit({ connected: state === "connected" });
      if (state === "connected") recovered();
      else if (state === "failed") stepDown("failed");
      else if (state === "disconnected") {
        // "disconnected" often heals by itself within a few seconds; walk the ladder if it does not.
        setTimeout(() => pc === session.pc && pc.connectionState === "disconnected" && stepDown("disconnected"), 3000);
      }
    };
    pc.onnegotiationneeded = async () => {
      if (pc !== session.pc || !session.peerPresent || session.awaitingOffer) return;
      try {
        session.makingOffer = true;
        await pc.setLocalDescription();
        send("call.offer", { sdp: pc.localDescription.sdp, generation });
      } finally {
        session.makingOffer = false;
      }
    };
    const video = wantVideo && !session.audioOnly;
    const tracks = session.stream ? session.stream.getTracks().filter((track) => track.kind === "audio" || video) : [];
    if (tracks.length) {
      for (const track of tracks) pc.addTrack(track, session.stream);
      if (!tracks.some((track) => track.kind === "video") && video) pc.addTransceiver("video", { direction: "recvonly" });
    } else {
      pc.addTransceiver("audio", { direction: "recvonly" });
      if (video) pc.addTransceiver("video", { direction: "recvonly" });
    }
    return pc;
  }

  // The step-down ladder (signaling/PROTOCOL.md, issue 13 item 6). The doctor's side walks it (one
  // driver, so the two sides never rebuild against each other); the patient's side follows the
  // call.step_down events. Each rung gets LADDER_WAIT_MS to reconnect before the next one.
  async function freshIce() {
    try {
      const fresh = await call("call.ice_servers", { call_id: session.callId });
      session.iceServers = fresh.ice_servers || [];
      session.icePolicy = fresh.ice_transport_policy || "all";
    } catch (_) {
      /* keep the ones we have */
    }
  }

  function recovered() {
    clearTimeout(session.ladderTimer);
    session.ladderTimer = null;
    if (session.step >= 0) emit({ recovered: true, choose: false });
  }

  function follow(step) {
    session.lastStep = step;
    const index = LADDER.indexOf(step);
    if (index > session.step) session.step = index;
    if (step === "relay_only") freshIce(); // the driver's new-generation offer is answered under relay
    if (step === "audio_only") {
      session.audioOnly = true;
      // Our side may choose the last rung too, if sound alone does not come back either.
      if (session.polite) {
        clearTimeout(session.ladderTimer);
        session.ladderTimer = setTimeout(() => {
          session.ladderTimer = null;
          if (!session.ended && !(session.pc && session.pc.connectionState === "connected")) emit({ choose: true });
        }, LADDER_WAIT_MS * 1.5);
      }
    }
  }

  async function stepDown(why) {
    if (session.ended || session.polite || !session.peerPresent || session.ladderTimer) return;
    const next = session.step + 1;
    if (next >= LADDER.length) {
      emit({ choose: true, recovered: false });
      return;
    }
    const step = LADDER[next];
    session.step = next;
    session.lastStep = step;
    emit({ step, stepBy: "me", recovered: false, choose: false });
    await call("call.step_down", { call_id: session.callId, step, reason: why }).catch(() => {});
    if (step === "ice_restart") {
      await freshIce();
      try {
        session.pc.setConfiguration({ iceServers: session.iceServers, iceTransportPolicy: session.icePolicy });
      } catch (_) {
        /* a policy change needs a new connection: the next rung builds one */
      }
      session.pc.restartIce();
    } else if (step === "relay_only") {
      await freshIce();
      newConnection(); // a new generation, relay-only: our negotiationneeded offers it
    } else if (step === "audio_only") {
      session.audioOnly = true;
      await freshIce();
      newConnection();
      send("call.media", { audio: Boolean(session.stream && session.stream.getAudioTracks().some((t) => t.enabled)), video: false });
    }
    session.ladderTimer = setTimeout(() => {
      session.ladderTimer = null;
      if (session.pc && session.pc.connectionState === "connected") recovered();
      else stepDown("not recovered");
    }, LADDER_WAIT_MS);
  }

  /** The last rungs, chosen by a person: text chat or a call-back request; both end the call. */
  async function finalStep(step) {
    clearTimeout(session.ladderTimer);
    session.lastStep = step;
    emit({ choose: false, step, stepBy: "me" });
    try {
      await call("call.step_down", { call_id: session.callId, step, reason: "the call could not be restored" });
    } catch (error) {
      emit({ error });
    }
    stop(false, step);
  }

  async function onDescription({ description, generation: theirs }) {
    if (description.type === "offer" && theirs > session.theirGeneration && session.pc && session.pc.remoteDescription) {
      session.theirGeneration = theirs;
      newConnection(); // a new connection on their side: answer from a fresh one
    }
    session.theirGeneration = Math.max(session.theirGeneration, theirs);
    const pc = session.pc || newConnection();
    const collision = description.type === "offer" && (session.makingOffer || pc.signalingState !== "stable");
    if (collision) session.collisions = (session.collisions || 0) + 1;
    session.ignoreOffer = !session.polite && collision;
    if (session.ignoreOffer) return;
    await pc.setRemoteDescription(description);
    if (description.type === "offer") {
      session.awaitingOffer = false;
      await pc.setLocalDescription();
      send("call.answer", { sdp: pc.localDescription.sdp, generation: session.generation });
    }
  }

  function onEvent(event) {
    if (event.type === "call.peer_joined") {
      session.peerPresent = true;
      emit({ away: false, peerMedia: event.media || null });
      // The joiner offers: build a fresh connection and wait (our own negotiationneeded is held
      // back until their offer has been answered).
      session.awaitingOffer = true;
      newConnection();
    } else if (event.type === "call.peer_away") {
      session.peerPresent = false;
      emit({ away: true });
    }
    else if (event.type === "call.description") onDescription(event).catch(() => {});
    else if (event.type === "call.candidate") {
      if (session.pc && event.generation === session.theirGeneration) session.pc.addIceCandidate(event.candidate).catch(() => {});
    } else if (event.type === "call.end_of_candidates") {
      if (session.pc && event.generation === session.theirGeneration) session.pc.addIceCandidate(null).catch(() => {});
    } else if (event.type === "call.media") emit({ peerMedia: { audio: event.audio, video: event.video } });
    else if (event.type === "call.step_down") {
      follow(event.step);
      emit({ step: event.step, stepBy: event.by, recovered: false, choose: false });
    } else if (event.type === "call.ended" || event.type === "call.replaced") stop(false, event.reason === "stepped_down" ? session.lastStep || null : null);
  }

  let unsubscribe = null;
  function stop(hangup, finalStepTaken = null) {
    if (session.ended) return;
    session.ended = true;
    clearTimeout(session.ladderTimer);
    if (hangup && session.callId) call("call.hangup", { call_id: session.callId }).catch(() => {});
    if (unsubscribe) unsubscribe();
    if (session.pc) session.pc.close();
    if (session.stream) for (const track of session.stream.getTracks()) track.stop();
    emit({ ended: true, connected: false, remote: null, finalStep: finalStepTaken });
  }

  (async () => {
    const { stream, notice } = await localMedia(wantVideo);
    session.stream = stream;
    emit({ local: stream, notice, audio: Boolean(stream && stream.getAudioTracks().length), video: Boolean(stream && stream.getVideoTracks().length) });
    unsubscribe = subscribe(
      "call.join",
      () => ({ consultation_id: Number(consultationId), v: 1, media: { audio: Boolean(stream && stream.getAudioTracks().length), video: Boolean(stream && stream.getVideoTracks().length) } }),
      onEvent,
      (result, error) => {
        if (!result) {
          emit({ error });
          if (error && ["call_ended", "call_not_started", "not_found", "consultation_not_active"].includes(error.code)) stop(false);
          return;
        }
        session.callId = result.call_id;
        session.polite = result.polite;
        session.iceServers = result.ice_servers || [];
        session.icePolicy = result.ice_transport_policy || "all";
        for (const taken of result.steps || []) follow(taken.step);
        emit({ callId: result.call_id, joined: true, peerMedia: result.peer && result.peer.media });
        session.peerPresent = Boolean(result.peer && result.peer.present);
        if (session.peerPresent) newConnection(); // we joined second: our negotiationneeded makes the offer
      },
    );
  })();

  return {
    stop,
    setAudio(on) {
      if (session.stream) for (const track of session.stream.getAudioTracks()) track.enabled = on;
      emit({ audio: on });
      send("call.media", { audio: on, video: Boolean(session.stream && session.stream.getVideoTracks().some((t) => t.enabled)) });
    },
    setVideo(on) {
      if (session.stream) for (const track of session.stream.getVideoTracks()) track.enabled = on;
      emit({ video: on });
      send("call.media", { audio: Boolean(session.stream && session.stream.getAudioTracks().some((t) => t.enabled)), video: on });
    },
    stats: () => (session.pc ? session.pc.getStats() : null),
    finalStep,
    /** Walk one rung as the connection-state handler does on "failed" (the browser tests call it:
     * on loopback nothing fails by itself). */
    stepDown: () => stepDown("failed"),
    /** Renegotiate now (an ICE restart), as a side does to add video or share the screen. */
    renegotiate: () => session.pc && session.pc.restartIce(),
    /** How many offer collisions (glare) this side has resolved. */
    collisions: () => session.collisions || 0,
  };
}

/**
 * The call area of a consultation. The doctor starts (`canStart`), the patient answers when
 * `ringing` is set by a call.ringing event.
 */
export function CallPanel({ consultationId, channel, canStart, ringing, onClosed }) {
  const [state, setState] = useState(null);
  const controller = useRef(null);
  useEffect(() => () => controller.current && controller.current.stop(true), []);
  const begin = (video) => {
    setState({ starting: true });
    controller.current = startSession({ consultationId, wantVideo: video, onState: setState });
    window.__telemedCall = controller.current; // for the browser tests' getStats()
  };
  const end = () => {
    if (controller.current) controller.current.stop(true);
    controller.current = null;
    if (onClosed) onClosed();
  };
  if (!state || state.ended) {
    const showStart = canStart || ringing;
    return html`<section class="card call" aria-labelledby="call-title">
      <h2 class="card-title" id="call-title">${t("call.title")}</h2>
      ${state && state.ended && html`<p class="muted" role="status">${t("call.ended")}</p>`}
      ${state && state.ended && state.finalStep && html`<p class="alert alert-info" role="status" data-testid="call-final">${t("call.step." + state.finalStep)}</p>`}
      ${ringing && html`<p class="alert alert-info" role="alert">${t("call.ringing")}</p>`}
      ${showStart && html`<p class="hint">${t("call.permissionNote")}</p>
        <div class="row">
          ${ringing
            ? html`<button type="button" class="btn btn-primary" data-testid="call-answer" onClick=${() => begin(channel !== "audio")}>${t("call.answer")}</button>`
            : html`<button type="button" class="btn btn-primary" data-testid="call-video" onClick=${() => begin(true)}>${t("call.startVideo")}</button>
                <button type="button" class="btn btn-ghost" data-testid="call-audio" onClick=${() => begin(false)}>${t("call.startAudio")}</button>`}
        </div>`}
      ${!showStart && html`<${DeviceCheck} />`}
    </section>`;
  }
  const c = controller.current;
  const status = state.connected ? t("call.connected") : state.away ? t("call.away") : state.step ? t("call.reconnecting") : t("call.waiting");
  return html`<section class="card call" aria-labelledby="call-title">
    <div class="card-head"><h2 class="card-title" id="call-title">${t("call.title")}</h2><span class="badge" role="status" data-testid="call-status">${status}</span></div>
    ${state.notice && html`<p class="alert alert-warn" role="alert" data-testid="call-notice">${state.notice}</p>`}
    ${state.error && html`<p class="alert alert-error" role="alert">${errorText(state.error)}</p>`}
    ${state.step && html`<p class=${"alert " + (state.recovered ? "alert-info" : "alert-warn")} role="status" data-testid="call-step" data-step=${state.step}>
      ${state.recovered ? t("call.recovered") : t("call.step." + state.step)}${state.stepBy && state.stepBy !== "me" ? " " + t("call.stepBy", { who: t("call.who." + state.stepBy) }) : ""}</p>`}
    ${state.choose && html`<div class="stack" data-testid="call-choose">
      <p class="alert alert-warn" role="alert">${t("call.step.choose")}</p>
      <div class="row">
        <button type="button" class="btn btn-ghost" data-testid="call-to-chat" onClick=${() => c.finalStep("text_chat")}>${t("call.toChat")}</button>
        <button type="button" class="btn btn-primary" data-testid="call-callback" onClick=${() => c.finalStep("callback_request")}>${t("call.askCallBack")}</button>
      </div>
    </div>`}
    <div class="videos">
      <${Video} stream=${state.remote} muted=${false} label=${t("call.remote")} className="video-remote" />
      ${state.local && state.local.getVideoTracks().length > 0 && html`<${Video} stream=${state.local} muted=${true} label=${t("call.local")} className="video-local" />`}
    </div>
    ${state.peerMedia && state.peerMedia.audio === false && html`<p class="muted small">${t("call.remoteMuted")}</p>`}
    ${state.peerMedia && state.peerMedia.video === false && html`<p class="muted small">${t("call.remoteNoVideo")}</p>`}
    <div class="row call-controls">
      ${state.local && state.local.getAudioTracks().length > 0 && html`<button type="button" class="btn btn-ghost" aria-pressed=${!state.audio} onClick=${() => c.setAudio(!state.audio)}>${state.audio ? t("call.mute") : t("call.unmute")}</button>`}
      ${state.local && state.local.getVideoTracks().length > 0 && html`<button type="button" class="btn btn-ghost" aria-pressed=${!state.video} onClick=${() => c.setVideo(!state.video)}>${state.video ? t("call.cameraOff") : t("call.cameraOn")}</button>`}
      <button type="button" class="btn btn-danger" data-testid="call-hangup" onClick=${end}>${t("call.hangup")}</button>
    </div>
  </section>`;
}

/** Camera and microphone check against the server's echo peer (echo.offer / echo.stats). */
export function DeviceCheck() {
  const [state, setState] = useState(null);
  const ref = useRef(null);
  const stop = () => {
    const s = ref.current;
    ref.current = null;
    if (!s) return;
    clearInterval(s.timer);
    if (s.session) call("echo.stop", { session: s.session }).catch(() => {});
    if (s.pc) s.pc.close();
    if (s.stream) for (const track of s.stream.getTracks()) track.stop();
    setState(null);
  };
  useEffect(() => stop, []);
  const start = async () => {
    const { stream, notice } = await localMedia(true);
    const s = { stream, pc: new RTCPeerConnection({ iceServers: [] }), session: null, timer: null };
    ref.current = s;
    const remote = new MediaStream();
    setState({ local: stream, notice, remote: null, stats: null });
    s.pc.ontrack = (event) => {
      remote.addTrack(event.track);
      setState((st) => st && { ...st, remote: new MediaStream(remote.getTracks()) });
    };
    if (stream) for (const track of stream.getTracks()) s.pc.addTrack(track, stream);
    else s.pc.addTransceiver("audio");
    await s.pc.setLocalDescription();
    await new Promise((resolve) => {
      if (s.pc.iceGatheringState === "complete") resolve();
      s.pc.onicegatheringstatechange = () => s.pc.iceGatheringState === "complete" && resolve();
      setTimeout(resolve, 3000);
    });
    try {
      const answer = await call("echo.offer", { sdp: s.pc.localDescription.sdp, v: 1 });
      s.session = answer.session;
      await s.pc.setRemoteDescription({ type: "answer", sdp: answer.sdp });
      s.timer = setInterval(async () => {
        try {
          const stats = await call("echo.stats", { session: s.session });
          setState((st) => st && { ...st, stats });
        } catch (_) {
          /* the next tick tries again */
        }
      }, 2000);
    } catch (error) {
      setState((st) => st && { ...st, error });
    }
  };
  if (!state) return html`<div class="stack"><p class="hint">${t("call.checkExplain")}</p>
    <button type="button" class="btn btn-ghost" data-testid="device-check" onClick=${start}>${t("call.check")}</button></div>`;
  return html`<div class="stack">
    ${state.notice && html`<p class="alert alert-warn" role="alert">${state.notice}</p>`}
    ${state.error && html`<p class="alert alert-error" role="alert">${errorText(state.error)}</p>`}
    ${state.step && html`<p class=${"alert " + (state.recovered ? "alert-info" : "alert-warn")} role="status" data-testid="call-step" data-step=${state.step}>
      ${state.recovered ? t("call.recovered") : t("call.step." + state.step)}${state.stepBy && state.stepBy !== "me" ? " " + t("call.stepBy", { who: t("call.who." + state.stepBy) }) : ""}</p>`}
    ${state.choose && html`<div class="stack" data-testid="call-choose">
      <p class="alert alert-warn" role="alert">${t("call.step.choose")}</p>
      <div class="row">
        <button type="button" class="btn btn-ghost" data-testid="call-to-chat" onClick=${() => c.finalStep("text_chat")}>${t("call.toChat")}</button>
        <button type="button" class="btn btn-primary" data-testid="call-callback" onClick=${() => c.finalStep("callback_request")}>${t("call.askCallBack")}</button>
      </div>
    </div>`}
    <div class="videos"><${Video} stream=${state.remote} muted=${true} label=${t("call.remote")} className="video-remote" /></div>
    ${state.stats && html`<p role="status" data-testid="echo-stats">${t("call.checkResult", { grade: state.stats.grade, rtt: Math.round(state.stats.rtt_ms ?? 0) })}</p>`}
    <button type="button" class="btn btn-ghost" onClick=${stop}>${t("call.checkStop")}</button>
  </div>`;
}
