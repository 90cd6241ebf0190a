// Attention when it matters (an offer to a doctor, a doctor accepting a patient): a short tone
// made with Web Audio (no sound file to download) and a system notification when the tab is in
// the background. Browsers allow both only after a user gesture, so `unlock()` runs on clicks.
let audio = null;

export function unlockSound() {
  try {
    audio = audio || new AudioContext();
    if (audio.state === "suspended") audio.resume();
  } catch (_) {
    audio = null;
  }
}

export function chime() {
  if (!audio) return;
  const now = audio.currentTime;
  for (const [i, freq] of [880, 1320].entries()) {
    const osc = audio.createOscillator();
    const gain = audio.createGain();
    osc.frequency.value = freq;
    gain.gain.setValueAtTime(0.0001, now + i * 0.18);
    gain.gain.exponentialRampToValueAtTime(0.2, now + i * 0.18 + 0.02);
    gain.gain.exponentialRampToValueAtTime(0.0001, now + i * 0.18 + 0.16);
    osc.connect(gain).connect(audio.destination);
    osc.start(now + i * 0.18);
    osc.stop(now + i * 0.18 + 0.17);
  }
}

export const notificationsSupported = () => "Notification" in window;
export const notificationPermission = () => (notificationsSupported() ? Notification.permission : "unsupported");

export async function askNotificationPermission() {
  if (!notificationsSupported()) return "unsupported";
  return Notification.requestPermission();
}

/** Sound always; a system notification too when the page is hidden and allowed. */
export function alertUser(title, body) {
  chime();
  if (notificationsSupported() && Notification.permission === "granted" && document.visibilityState !== "visible") {
    try {
      new Notification(title, { body, tag: "telemed" });
    } catch (_) {
      /* some mobile browsers allow notifications only from a service worker */
    }
  }
}
