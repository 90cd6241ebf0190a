// A small hash router: "#/doctor/consultation/12" -> {role: "doctor", parts: ["consultation", "12"]}.
// Hash routes need no server-side routes, and the fragment never reaches the server or its logs.
import { createStore } from "./store.js";

function parse() {
  const raw = location.hash.replace(/^#\/?/, "");
  const [path, query = ""] = raw.split("?");
  const parts = path.split("/").filter(Boolean).map(decodeURIComponent);
  return { role: parts[0] || "", parts: parts.slice(1), query: new URLSearchParams(query) };
}

export const route = createStore(parse());
window.addEventListener("hashchange", () => route.set(parse()));

export function navigate(path) {
  const target = "#" + (path.startsWith("/") ? path : "/" + path);
  if (location.hash === target) route.set(parse());
  else location.hash = target;
}

export const href = (path) => "#" + (path.startsWith("/") ? path : "/" + path);
