// htm bound to Preact's h: JSX-like templates without a build step (and without eval, so the
// CSP needs no 'unsafe-eval').
import { h, render, Fragment } from "preact";
import htm from "htm";

export const html = htm.bind(h);
export { h, render, Fragment };
