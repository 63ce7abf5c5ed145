// Keyturn's pages in browser mode. No framework, no dependencies, no inline script.
//
// Tokens live in HttpOnly cookies the script cannot read; it only reads the csrf_token cookie
// to echo it in X-CSRF-Token. Nothing secret is ever written to localStorage: the only things
// stored there are the time of the last refresh and a short lease, to coordinate tabs.
"use strict";

(() => {
  const UNSAFE_METHODS = new Set(["POST", "PUT", "PATCH", "DELETE"]);
  const REFRESH_LOCK = "keyturn-refresh";
  const REFRESHED_AT_KEY = "keyturn:refreshed-at";
  const LEASE_KEY = "keyturn:refresh-lease";
  const REGISTERED_EMAIL_KEY = "keyturn:registered-email";
  const LEASE_MS = 10000;

  const channel = "BroadcastChannel" in window ? new BroadcastChannel("keyturn") : null;

  // ---- Words ----------------------------------------------------------------------------------

  // Every sentence comes from the page, which Keyturn renders in the reader's language
  // (templates/_strings.html); the API's own `message`s stay English, so errors are explained
  // from their `error` code.
  const LANGUAGE = document.documentElement.lang || "en";
  const STRINGS = new Map();
  const stringsTemplate = document.getElementById("strings");
  if (stringsTemplate) {
    for (const element of stringsTemplate.content.querySelectorAll("[data-key]")) {
      STRINGS.set(element.dataset.key, element.textContent);
    }
  }

  function t(key, values) {
    const text = STRINGS.has(key) ? STRINGS.get(key) : key;
    return text.replace(/\{(\w+)\}/g, (whole, name) =>
      values && name in values ? String(values[name]) : whole,
    );
  }

  // The same sentence with nodes (a <time>, say) in place of its {placeholders}.
  function tNodes(key, values) {
    const parts = t(key).split(/(\{\w+\})/);
    return parts.map((part) => {
      const match = /^\{(\w+)\}$/.exec(part);
      return match && match[1] in values ? values[match[1]] : part;
    });
  }

  const pluralRules = new Intl.PluralRules(LANGUAGE);

  function tCount(key, count) {
    const form = `${key}-${pluralRules.select(count)}`;
    return t(STRINGS.has(form) ? form : `${key}-other`, { count });
  }

  // What the page says about an API error: a sentence for its code, never the English message.
  function explain(error) {
    const key = `error-${error.code}`;
    if (error.code && STRINGS.has(key)) return t(key);
    return t("server-answered", { status: error.status });
  }

  // The password policy's reasons arrive as English sentences; each known one is said again
  // in the page's language, and an unknown one is shown as it came.
  const REASONS = [
    [/at least (\d+)/, "reason-min"],
    [/at most (\d+)/, "reason-max"],
    [/commonly used/, "reason-common"],
    [/single character/, "reason-repeat"],
    [/email address or username/, "reason-personal"],
  ];

  function translateReason(reason) {
    for (const [pattern, key] of REASONS) {
      const match = pattern.exec(reason);
      if (match) return t(key, { count: match[1] });
    }
    return reason;
  }

  // ---- API calls ------------------------------------------------------------------------------

  class ApiError extends Error {
    constructor(response, body) {
      super((body && body.message) || `The server answered ${response.status}.`);
      // `message` is the API's English sentence, kept for the console; pages show explain().
      this.status = response.status;
      this.code = (body && body.error) || "";
      this.body = body || {};
      this.retryAfter = Number.parseInt(response.headers.get("Retry-After") || "", 10);
    }
  }

  class SignedOut extends Error {}

  // The person closed the "confirm it is you" dialog: the change they asked for is not made.
  class Cancelled extends Error {}

  function readCookie(name) {
    for (const part of document.cookie.split(";")) {
      const index = part.indexOf("=");
      if (index > 0 && part.slice(0, index).trim() === name) {
        return decodeURIComponent(part.slice(index + 1).trim());
      }
    }
    return "";
  }

  function csrfToken() {
    return readCookie("__Host-csrf_token") || readCookie("csrf_token");
  }

  function send(method, path, body, extraHeaders) {
    const headers = { Accept: "application/json", ...(extraHeaders || {}) };
    if (body !== undefined) headers["Content-Type"] = "application/json";
    if (UNSAFE_METHODS.has(method)) {
      const token = csrfToken();
      if (token) headers["X-CSRF-Token"] = token;
    }
    return fetch(path, {
      method,
      headers,
      body: body === undefined ? undefined : JSON.stringify(body),
      credentials: "same-origin",
      cache: "no-store",
    });
  }

  async function bodyOf(response) {
    if (response.status === 204) return null;
    try {
      return await response.json();
    } catch {
      return null;
    }
  }

  async function errorCode(response) {
    const body = await bodyOf(response.clone());
    return (body && body.error) || "";
  }

  // ---- One refresh for every caller, in this tab and across tabs --------------------------------

  let lastRefreshAt = 0;
  let refreshInFlight = null;

  function storageGet(key) {
    try {
      return window.localStorage.getItem(key);
    } catch {
      return null;
    }
  }

  function storageSet(key, value) {
    try {
      if (value === null) window.localStorage.removeItem(key);
      else window.localStorage.setItem(key, value);
    } catch {
      // Storage may be disabled; the in-tab promise still holds calls to one refresh.
    }
  }

  function refreshedAt() {
    const shared = Number(storageGet(REFRESHED_AT_KEY));
    return Math.max(lastRefreshAt, Number.isFinite(shared) ? shared : 0);
  }

  const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

  // Where Web Locks are missing (plain http on an address other than localhost), a lease in
  // localStorage: write it, wait a moment, and run only if it is still ours.
  async function withLease(task) {
    const me = `${Date.now()}-${Math.random().toString(36).slice(2)}`;
    const giveUpAt = Date.now() + LEASE_MS;
    while (Date.now() < giveUpAt) {
      let lease = null;
      try {
        lease = JSON.parse(storageGet(LEASE_KEY) || "null");
      } catch {
        lease = null;
      }
      if (!lease || lease.until < Date.now()) {
        storageSet(LEASE_KEY, JSON.stringify({ owner: me, until: Date.now() + LEASE_MS }));
        await sleep(30);
        const held = storageGet(LEASE_KEY) || "";
        if (held.includes(me)) {
          try {
            return await task();
          } finally {
            if ((storageGet(LEASE_KEY) || "").includes(me)) storageSet(LEASE_KEY, null);
          }
        }
      }
      await sleep(100);
    }
    return task();
  }

  function withCrossTabLock(task) {
    if (navigator.locks && typeof navigator.locks.request === "function") {
      return navigator.locks.request(REFRESH_LOCK, task);
    }
    return withLease(task);
  }

  // Renew the access token for a call sent at `sentAt` that was told its token expired.
  // Every caller in this tab shares one promise; tabs queue on one lock, and whoever gets it
  // after another tab already refreshed (since the call was sent) only retries.
  function renewSession(sentAt) {
    if (!refreshInFlight) {
      refreshInFlight = withCrossTabLock(async () => {
        if (refreshedAt() >= sentAt) return;
        const response = await send("POST", "/api/auth/refresh");
        if (!response.ok) throw new SignedOut(await errorCode(response));
        lastRefreshAt = Date.now();
        storageSet(REFRESHED_AT_KEY, String(lastRefreshAt));
      }).finally(() => {
        refreshInFlight = null;
      });
    }
    return refreshInFlight;
  }

  async function isRenewable(response) {
    if (response.status !== 401) return false;
    const code = await errorCode(response);
    // missing_token: the access cookie is gone but the refresh cookie may still live.
    return code === "token_expired" || (code === "missing_token" && csrfToken() !== "");
  }

  async function api(method, path, body) {
    const sentAt = Date.now();
    let response = await send(method, path, body);
    if (await isRenewable(response)) {
      await renewSession(sentAt);
      response = await send(method, path, body);
    }
    if (response.status === 401) {
      const code = await errorCode(response);
      // A wrong password or code typed into a form is the form's business, not a lost session.
      if (code !== "invalid_credentials" && code !== "invalid_code") throw new SignedOut(code);
    }
    const data = await bodyOf(response);
    if (!response.ok) throw new ApiError(response, data);
    return data;
  }

  function goToLogin(reason) {
    const query = reason ? `?${reason}=1` : "";
    window.location.assign(`/login${query}`);
  }

  // ---- Forms ----------------------------------------------------------------------------------

  function show(element, content) {
    element.replaceChildren();
    if (content instanceof Node) element.append(content);
    else element.textContent = content;
    element.hidden = false;
  }

  function hide(element) {
    element.replaceChildren();
    element.hidden = true;
  }

  function list(items) {
    const ul = document.createElement("ul");
    for (const item of items) {
      const li = document.createElement("li");
      li.textContent = item;
      ul.append(li);
    }
    return ul;
  }

  function sentenceWithList(sentence, items) {
    const fragment = document.createDocumentFragment();
    const p = document.createElement("p");
    p.textContent = sentence;
    fragment.append(p, list(items));
    return fragment;
  }

  function clearErrors(form, summary) {
    hide(summary);
    for (const input of form.querySelectorAll("input")) {
      input.removeAttribute("aria-invalid");
      const error = document.getElementById(`${input.id}-error`);
      if (error) hide(error);
    }
  }

  function fieldError(id, content) {
    const input = document.getElementById(id);
    input.setAttribute("aria-invalid", "true");
    show(document.getElementById(`${id}-error`), content);
    return input;
  }

  function formError(summary, content) {
    show(summary, content);
    summary.focus();
  }

  // Several problems: their count goes in the summary, each problem once, under its own
  // field. One problem needs no summary: the focused field reads out its own message.
  function fieldsSummary(summary, count) {
    if (count > 1) show(summary, t("please-fix", { count }));
  }

  // Characters as typed (code points), as the server counts them.
  function characters(text) {
    return [...text].length;
  }

  // Every password field has a Show/Hide button next to it. A real <button>, so Tab reaches
  // it and Enter or Space presses it; its name says what pressing it does next.
  function setupReveal() {
    for (const button of document.querySelectorAll("button[data-reveal]")) {
      const input = document.getElementById(button.dataset.reveal);
      if (!input) continue;
      const word = button.firstChild;
      button.addEventListener("click", () => {
        const hidden = input.type === "password";
        input.type = hidden ? "text" : "password";
        word.nodeValue = hidden ? t("hide") : t("show");
      });
      input.form.addEventListener("submit", () => {
        input.type = "password";
        word.nodeValue = t("show");
      });
    }
  }

  // "14 minutes 59 seconds", "14분 59초": the units and their plurals come from Intl.
  function describeWait(seconds) {
    if (!Number.isFinite(seconds) || seconds <= 0) return t("a-little-while");
    const unit = (name, value) =>
      new Intl.NumberFormat(LANGUAGE, { style: "unit", unit: name, unitDisplay: "long" }).format(
        value,
      );
    const minutes = Math.floor(seconds / 60);
    const rest = seconds % 60;
    const parts = [];
    if (minutes) parts.push(unit("minute", minutes));
    if (rest || !minutes) parts.push(unit("second", rest));
    return parts.join(" ");
  }

  // Keep the button disabled and counting down until Retry-After has passed. `sentence` says
  // why, with {wait} for the time left.
  function lockOut(button, summary, seconds, label, sentence = "lockout") {
    const until = Date.now() + seconds * 1000;
    button.disabled = true;
    const tick = () => {
      const left = Math.ceil((until - Date.now()) / 1000);
      if (left <= 0) {
        button.disabled = false;
        button.textContent = label;
        hide(summary);
        return;
      }
      button.textContent = t("try-again-in", { wait: describeWait(left) });
      setTimeout(tick, 1000);
    };
    formError(summary, t(sentence, { wait: describeWait(seconds) }));
    tick();
  }

  function setupLogin() {
    const form = document.getElementById("login-form");
    const summary = document.getElementById("form-error");
    const notice = document.getElementById("notice");
    const identifier = document.getElementById("identifier");
    const password = document.getElementById("password");
    const remember = document.getElementById("remember-me");
    const button = document.getElementById("login-submit");
    const label = button.textContent;

    const params = new URLSearchParams(window.location.search);
    if (params.has("registered")) {
      show(notice, t("notice-registered"));
      identifier.value = sessionStorage.getItem(REGISTERED_EMAIL_KEY) || "";
      sessionStorage.removeItem(REGISTERED_EMAIL_KEY);
    } else if (params.has("deleted")) {
      show(notice, t("notice-deleted"));
    } else if (params.has("signed_out")) {
      show(notice, t("notice-signed-out"));
    } else if (params.has("expired")) {
      show(notice, t("notice-expired"));
    } else if (params.has("password_reset")) {
      show(notice, t("notice-password-reset"));
    }
    (identifier.value ? password : identifier).focus();
    setupPasskeyLogin(summary, remember, (busy) => {
      button.disabled = busy;
      document.getElementById("passkey-login-button").disabled = busy;
    });
    const secondStep = setupSecondStep(form, summary, () => {
      show(notice, t("mfa-expired"));
      password.focus();
    });
    // A provider vouched for the user and the account has a second factor: its mfa_token
    // comes in the fragment (never sent to a server), wiped from the address bar at once.
    const fragment = new URLSearchParams(window.location.hash.slice(1));
    if (fragment.get("mfa_token")) {
      history.replaceState(null, "", window.location.pathname + window.location.search);
      secondStep(fragment.get("mfa_token"), (fragment.get("methods") || "").split(","));
    }

    form.addEventListener("submit", async (event) => {
      event.preventDefault();
      clearErrors(form, summary);
      const who = identifier.value.trim();
      let first = null;
      if (!who) first = first || fieldError("identifier", t("enter-identifier"));
      if (!password.value) first = first || fieldError("password", t("enter-password"));
      if (first) {
        first.focus();
        return;
      }
      const body = who.includes("@") ? { email: who } : { username: who };
      body.password = password.value;
      body.remember_me = remember.checked;
      button.disabled = true;
      let response;
      try {
        response = await send("POST", "/api/auth/login", body, { "X-Auth-Mode": "cookie" });
      } catch {
        button.disabled = false;
        formError(summary, t("unreachable"));
        return;
      }
      if (response.ok) {
        window.location.assign("/dashboard");
        return;
      }
      button.disabled = false;
      const error = new ApiError(response, await bodyOf(response));
      if (error.code === "mfa_required") {
        password.value = "";
        secondStep(error.body.mfa_token, error.body.methods || []);
      } else if (error.status === 429) {
        lockOut(button, summary, error.retryAfter, label);
      } else if (error.code === "invalid_credentials") {
        password.value = "";
        formError(summary, t("wrong-login"));
      } else if (error.status === 422 && Array.isArray(error.body.reasons)) {
        formError(summary, sentenceWithList(t("check-fields"), error.body.reasons));
      } else {
        formError(summary, explain(error));
      }
    });
  }

  // A code as typed: spaces and a dash between its halves are forgiven.
  function typedCode(input) {
    return input.value.replace(/[\s-]/g, "");
  }

  // The second step of a login whose password was right: a code from the authenticator app,
  // or a recovery code, for the mfa_token the login answered with. Returns `start(token)`.
  function setupSecondStep(loginForm, summary, expired) {
    const form = document.getElementById("mfa-form");
    const heading = document.getElementById("mfa-heading");
    const code = document.getElementById("mfa-code");
    const recovery = document.getElementById("mfa-recovery");
    const codeField = document.getElementById("mfa-code-field");
    const recoveryField = document.getElementById("mfa-recovery-field");
    const switchButton = document.getElementById("mfa-switch");
    const button = document.getElementById("mfa-submit");
    const aside = document.getElementById("register-aside");
    const passkeyPart = document.getElementById("mfa-passkey");
    const passkeyButton = document.getElementById("mfa-passkey-button");
    const passwordless = document.getElementById("passkey-login");
    const label = button.textContent;
    let token = "";
    let byRecoveryCode = false;

    // A passkey as the second factor: options for this login's account, then its assertion.
    passkeyButton.addEventListener("click", async () => {
      clearErrors(form, summary);
      passkeyButton.disabled = true;
      let response;
      try {
        const options = await send("POST", "/api/auth/passkeys/login/options", {
          mfa_token: token,
        });
        if (!options.ok) throw new ApiError(options, await bodyOf(options));
        const credential = await navigator.credentials.get({
          publicKey: requestOptions(await options.json()),
        });
        response = await send(
          "POST",
          "/api/auth/passkeys/login",
          { credential: credentialJson(credential), mfa_token: token },
          { "X-Auth-Mode": "cookie" },
        );
      } catch (error) {
        passkeyButton.disabled = false;
        if (error instanceof ApiError && error.code === "invalid_mfa_token") showLogin();
        else if (error instanceof ApiError) formError(summary, explain(error));
        else if (isCancelled(error)) formError(summary, t("passkey-sign-in-cancelled"));
        else if (error instanceof TypeError) formError(summary, t("unreachable"));
        else formError(summary, t("passkey-not-accepted"));
        return;
      }
      if (response.ok) {
        window.location.assign("/dashboard");
        return;
      }
      passkeyButton.disabled = false;
      const error = new ApiError(response, await bodyOf(response));
      if (error.code === "invalid_mfa_token") showLogin();
      else if (error.status === 429) lockOut(passkeyButton, summary, error.retryAfter, label);
      else if (error.code === "invalid_credential") formError(summary, t("passkey-not-accepted"));
      else formError(summary, explain(error));
    });

    function showLogin() {
      token = "";
      form.hidden = true;
      loginForm.hidden = false;
      aside.hidden = false;
      if (passwordless && hasPasskeys()) passwordless.hidden = false;
      for (const part of document.querySelectorAll(".providers")) part.hidden = false;
      expired();
    }

    switchButton.addEventListener("click", () => {
      byRecoveryCode = !byRecoveryCode;
      clearErrors(form, summary);
      codeField.hidden = byRecoveryCode;
      recoveryField.hidden = !byRecoveryCode;
      switchButton.textContent = t(byRecoveryCode ? "use-app-code" : "use-recovery-code");
      (byRecoveryCode ? recovery : code).focus();
    });

    form.addEventListener("submit", async (event) => {
      event.preventDefault();
      clearErrors(form, summary);
      const body = { mfa_token: token };
      if (byRecoveryCode) {
        if (!recovery.value.trim()) {
          fieldError("mfa-recovery", t("enter-recovery-code")).focus();
          return;
        }
        body.recovery_code = recovery.value.trim();
      } else {
        if (!/^[0-9]{6}$/.test(typedCode(code))) {
          fieldError("mfa-code", t("enter-code")).focus();
          return;
        }
        body.code = typedCode(code);
      }
      button.disabled = true;
      let response;
      try {
        response = await send("POST", "/api/auth/mfa/verify", body, { "X-Auth-Mode": "cookie" });
      } catch {
        button.disabled = false;
        formError(summary, t("unreachable"));
        return;
      }
      if (response.ok) {
        window.location.assign("/dashboard");
        return;
      }
      button.disabled = false;
      const error = new ApiError(response, await bodyOf(response));
      if (error.code === "invalid_mfa_token") {
        showLogin();
      } else if (error.status === 429) {
        lockOut(button, summary, error.retryAfter, label);
      } else if (error.code === "invalid_code" && byRecoveryCode) {
        recovery.value = "";
        fieldError("mfa-recovery", t("wrong-recovery-code")).focus();
      } else if (error.code === "invalid_code") {
        code.value = "";
        fieldError("mfa-code", t("wrong-code")).focus();
      } else {
        formError(summary, explain(error));
      }
    });

    // `methods`: what the login answered; a passkey is offered where this browser has them,
    // codes where the account has an authenticator app.
    return (mfaToken, methods) => {
      token = mfaToken;
      clearErrors(loginForm, summary);
      loginForm.hidden = true;
      aside.hidden = true;
      if (passwordless) passwordless.hidden = true;
      for (const part of document.querySelectorAll(".providers")) part.hidden = true;
      form.hidden = false;
      code.value = "";
      recovery.value = "";
      const byPasskey = methods.includes("passkey") && hasPasskeys();
      const byCode = methods.includes("totp") || !byPasskey;
      passkeyPart.hidden = !byPasskey;
      document.getElementById("mfa-or").hidden = !byCode;
      codeField.hidden = !byCode;
      switchButton.parentElement.hidden = !byCode || !methods.includes("recovery_code");
      button.hidden = !byCode;
      (byPasskey ? passkeyButton : code).focus();
    };
  }

  // Problems the server would find in an address or a new password, found first so every
  // problem with the form shows at once; the server still decides.
  function emailProblem(input) {
    const address = input.value.trim();
    if (!address) return t("enter-email");
    if (input.validity.typeMismatch || !address.includes("@")) return t("email-shape");
    return "";
  }

  function newPasswordProblem(input, emptyKey) {
    if (!input.value) return t(emptyKey);
    const count = characters(input.value);
    if (count < input.minLength) return t("too-short", { count });
    return "";
  }

  // The server's username rule (services/accounts.py), checked here first so every problem
  // with the form shows at once; the server still decides.
  const USERNAME_SHAPE = /^[A-Za-z0-9][A-Za-z0-9_.-]{2,31}$/;

  function setupRegister() {
    const form = document.getElementById("register-form");
    const summary = document.getElementById("form-error");
    const email = document.getElementById("email");
    const username = document.getElementById("username");
    const password = document.getElementById("password");
    const button = document.getElementById("register-submit");
    const label = button.textContent;
    email.focus();

    function problems() {
      const found = [];
      const address = email.value.trim();
      const shape = emailProblem(email);
      if (shape) found.push(["email", shape]);
      const name = username.value.trim();
      if (name && !USERNAME_SHAPE.test(name)) found.push(["username", t("username-rule")]);
      const weak = newPasswordProblem(password, "choose-password");
      if (weak) found.push(["password", weak]);
      return found;
    }

    async function signIn(body) {
      // The password was typed once, to register: sign in with it rather than ask again.
      try {
        const response = await send(
          "POST",
          "/api/auth/login",
          { email: body.email, password: body.password },
          { "X-Auth-Mode": "cookie" },
        );
        if (response.ok) {
          window.location.assign("/dashboard");
          return;
        }
      } catch {
        // Fall through: the login page can still sign the new account in.
      }
      sessionStorage.setItem(REGISTERED_EMAIL_KEY, body.email);
      window.location.assign("/login?registered=1");
    }

    form.addEventListener("submit", async (event) => {
      event.preventDefault();
      clearErrors(form, summary);
      const found = problems();
      if (found.length) {
        const inputs = found.map(([id, message]) => fieldError(id, message));
        fieldsSummary(summary, found.length);
        inputs[0].focus();
        return;
      }
      const body = { email: email.value.trim(), password: password.value };
      if (username.value.trim()) body.username = username.value.trim();
      button.disabled = true;
      let response;
      try {
        response = await send("POST", "/api/auth/register", body);
      } catch {
        button.disabled = false;
        formError(summary, t("unreachable"));
        return;
      }
      if (response.status === 201) {
        await signIn(body);
        return;
      }
      button.disabled = false;
      const error = new ApiError(response, await bodyOf(response));
      const reasons = Array.isArray(error.body.reasons) ? error.body.reasons : [];
      const fields = {
        email_taken: "email",
        invalid_email: "email",
        username_taken: "username",
        invalid_username: "username",
        weak_password: "password",
      };
      if (error.code === "weak_password" && reasons.length) {
        fieldError("password", sentenceWithList(t("stronger"), reasons.map(translateReason)));
        formError(summary, t("not-accepted"));
      } else if (fields[error.code]) {
        fieldError(fields[error.code], explain(error)).focus();
      } else if (error.status === 429) {
        lockOut(button, summary, error.retryAfter, label);
      } else if (error.status === 422 && reasons.length) {
        formError(summary, sentenceWithList(t("check-fields"), reasons));
      } else {
        formError(summary, explain(error));
      }
    });
  }

  // ---- Dashboard ------------------------------------------------------------------------------

  function describeDevice(userAgent) {
    const ua = userAgent || "";
    if (!ua) return t("unknown-device");
    const browsers = [
      [/Edg(A|iOS)?\//, "Edge"],
      [/OPR\/|Opera/, "Opera"],
      [/Firefox\/|FxiOS\//, "Firefox"],
      [/HeadlessChrome\//, "Headless Chrome"],
      [/Chrome\/|CriOS\/|Chromium\//, "Chrome"],
      [/Version\/[\d.]+.*Safari\//, "Safari"],
      [/^curl\//, "curl"],
      [/python-httpx|python-requests|aiohttp|urllib/i, t("python-script")],
      [/keyturn/i, t("keyturn-client")],
    ];
    const systems = [
      [/iPhone|iPad|iPod/, "iOS"],
      [/Android/, "Android"],
      [/Windows/, "Windows"],
      [/Mac OS X|Macintosh/, "macOS"],
      [/CrOS/, "ChromeOS"],
      [/Linux/, "Linux"],
    ];
    const find = (table) => (table.find(([pattern]) => pattern.test(ua)) || [null, ""])[1];
    const browser = find(browsers);
    const system = find(systems);
    if (browser && system) return t("device-on", { browser, system });
    return browser || system || ua.split(/[\s/]/)[0].slice(0, 40) || t("unknown-device");
  }

  const relative = new Intl.RelativeTimeFormat(LANGUAGE, { numeric: "auto" });
  const absolute = new Intl.DateTimeFormat(LANGUAGE, { dateStyle: "medium", timeStyle: "short" });

  function ago(date) {
    const seconds = Math.round((date.getTime() - Date.now()) / 1000);
    if (Math.abs(seconds) < 45) return t("just-now");
    const steps = [
      [60, "minute"],
      [24, "hour"],
      [30, "day"],
      [12, "month"],
    ];
    let value = Math.round(seconds / 60);
    for (const [size, unit] of steps) {
      if (Math.abs(value) < size) return relative.format(value, unit);
      value = Math.round(value / size);
    }
    return relative.format(value, "year");
  }

  function timeElement(iso, text) {
    const element = document.createElement("time");
    element.dateTime = iso;
    element.title = absolute.format(new Date(iso));
    element.textContent = text;
    return element;
  }

  // Changes that need a recent login answer 403 reauthentication_required: `recently(call)`
  // then asks for the password (or, with an app, a code) in a dialog, and makes the call again.
  // Closing the dialog rejects with Cancelled.
  function setupReauthentication(hasApp) {
    const dialog = document.getElementById("reauth");
    const form = document.getElementById("reauth-form");
    const summary = document.getElementById("reauth-error");
    const password = document.getElementById("reauth-password");
    const code = document.getElementById("reauth-code");
    const passwordField = document.getElementById("reauth-password-field");
    const codeField = document.getElementById("reauth-code-field");
    const switchButton = document.getElementById("reauth-switch");
    const button = document.getElementById("reauth-submit");
    const cancel = document.getElementById("reauth-cancel");
    const label = button.textContent;
    let byCode = false;
    let pending = null;

    function useCode(on) {
      byCode = on;
      passwordField.hidden = on;
      codeField.hidden = !on;
      switchButton.textContent = t(on ? "use-password" : "use-app-code");
      (on ? code : password).focus();
    }

    function finish(outcome) {
      const settle = pending;
      pending = null;
      form.reset();
      clearErrors(form, summary);
      if (dialog.open) dialog.close();
      if (settle) settle(outcome);
    }

    switchButton.addEventListener("click", () => useCode(!byCode));
    cancel.addEventListener("click", () => finish(false));
    dialog.addEventListener("cancel", (event) => {
      event.preventDefault();
      finish(false);
    });
    form.addEventListener("submit", async (event) => {
      event.preventDefault();
      clearErrors(form, summary);
      let body;
      if (byCode) {
        if (!/^[0-9]{6}$/.test(typedCode(code))) {
          fieldError("reauth-code", t("enter-code")).focus();
          return;
        }
        body = { code: typedCode(code) };
      } else {
        if (!password.value) {
          fieldError("reauth-password", t("enter-password")).focus();
          return;
        }
        body = { password: password.value };
      }
      button.disabled = true;
      try {
        await api("POST", "/api/auth/reauthenticate", body);
      } catch (error) {
        button.disabled = false;
        if (error instanceof SignedOut) {
          finish(error);
        } else if (error.status === 429) {
          lockOut(button, summary, error.retryAfter, label);
        } else if (error.code === "invalid_credentials") {
          password.value = "";
          fieldError("reauth-password", t("reauth-wrong-password")).focus();
        } else if (error.code === "invalid_code") {
          code.value = "";
          fieldError("reauth-code", t("wrong-code")).focus();
        } else {
          formError(summary, explain(error));
        }
        return;
      }
      button.disabled = false;
      finish(true);
    });

    function confirmIdentity() {
      return new Promise((resolve, reject) => {
        pending = (outcome) => {
          if (outcome === true) resolve();
          else reject(outcome instanceof Error ? outcome : new Cancelled());
        };
        switchButton.hidden = !hasApp();
        dialog.showModal();
        useCode(false);
      });
    }

    return async function recently(call) {
      try {
        return await call();
      } catch (error) {
        if (!(error instanceof ApiError) || error.code !== "reauthentication_required") throw error;
      }
      await confirmIdentity();
      return call();
    };
  }

  // The server's QR code (inline SVG, without a namespace) as nodes: parsed in an inert
  // document, where nothing runs, and only its <svg> element taken over.
  function svgNode(text) {
    const parsed = new DOMParser().parseFromString(text, "text/html");
    const root = parsed.body.querySelector("svg");
    if (!root) return document.createTextNode("");
    for (const tag of ["script", "foreignObject"]) {
      for (const element of root.querySelectorAll(tag)) element.remove();
    }
    root.setAttribute("aria-hidden", "true");
    root.setAttribute("shape-rendering", "crispEdges");
    root.setAttribute("focusable", "false");
    return document.importNode(root, true);
  }

  // The Security card: the authenticator app off, being set up, its new codes, or on.
  function setupSecurity(recently, email, reload) {
    const views = {
      off: document.getElementById("totp-off"),
      setup: document.getElementById("totp-setup"),
      codes: document.getElementById("totp-codes"),
      on: document.getElementById("totp-on"),
    };
    const notice = document.getElementById("totp-notice");
    const summary = document.getElementById("totp-error");
    const form = document.getElementById("totp-confirm-form");
    const code = document.getElementById("totp-code");
    const confirmButton = document.getElementById("totp-confirm");
    const startButton = document.getElementById("totp-start");
    const disableButton = document.getElementById("totp-disable");
    const regenerateButton = document.getElementById("codes-regenerate");
    const codesList = document.getElementById("recovery-codes");
    let view = "";
    let codes = [];

    function showView(name) {
      view = name;
      for (const [key, element] of Object.entries(views)) element.hidden = key !== name;
    }

    function showCodes(fresh) {
      codes = fresh;
      codesList.replaceChildren(
        ...fresh.map((item) => {
          const entry = document.createElement("li");
          entry.textContent = item;
          return entry;
        }),
      );
      showView("codes");
      document.getElementById("codes-heading").focus();
    }

    // Run a button's call; a sign-out, a cancelled dialog, a lockout or anything else is
    // shown here, under the card's heading.
    async function act(button, call) {
      hide(notice);
      hide(summary);
      button.disabled = true;
      try {
        return await recently(call);
      } catch (error) {
        if (error instanceof SignedOut) goToLogin("expired");
        else if (error instanceof Cancelled) button.focus();
        else if (error.status === 429) formError(summary, t("too-many", { wait: describeWait(error.retryAfter) }));
        else if (error.code === "mfa_already_enabled") formError(summary, t("totp-already-on"));
        else formError(summary, explain(error));
        return null;
      } finally {
        button.disabled = false;
      }
    }

    startButton.addEventListener("click", async () => {
      const setup = await act(startButton, () => api("POST", "/api/auth/mfa/totp/setup"));
      if (!setup) return;
      document.getElementById("totp-qr").replaceChildren(svgNode(setup.qr_svg));
      // Grouped by four, as apps show keys; the spaces are ignored when it is typed.
      document.getElementById("totp-secret").textContent = setup.secret.replace(/(.{4})/g, "$1 ").trim();
      form.reset();
      showView("setup");
      code.focus();
    });

    document.getElementById("totp-cancel").addEventListener("click", () => {
      clearErrors(form, summary);
      showView("off");
      startButton.focus();
    });

    form.addEventListener("submit", async (event) => {
      event.preventDefault();
      clearErrors(form, summary);
      if (!/^[0-9]{6}$/.test(typedCode(code))) {
        fieldError("totp-code", t("enter-code")).focus();
        return;
      }
      confirmButton.disabled = true;
      let result;
      try {
        result = await recently(() =>
          api("POST", "/api/auth/mfa/totp/confirm", { code: typedCode(code) }),
        );
      } catch (error) {
        confirmButton.disabled = false;
        if (error instanceof SignedOut) goToLogin("expired");
        else if (error instanceof Cancelled) confirmButton.focus();
        else if (error.code === "invalid_code") {
          code.value = "";
          fieldError("totp-code", t("wrong-code")).focus();
        } else formError(summary, explain(error));
        return;
      }
      confirmButton.disabled = false;
      showCodes(result.recovery_codes);
      show(notice, t("totp-on"));
    });

    regenerateButton.addEventListener("click", async () => {
      if (!window.confirm(t("confirm-new-codes"))) return;
      const result = await act(regenerateButton, () => api("POST", "/api/auth/mfa/recovery-codes"));
      if (result) showCodes(result.recovery_codes);
    });

    disableButton.addEventListener("click", async () => {
      if (!window.confirm(t("confirm-totp-off"))) return;
      const result = await act(disableButton, () => api("DELETE", "/api/auth/mfa/totp"));
      if (result === null) return;
      showView("off");
      show(notice, t("totp-off"));
      startButton.focus();
      reload();
    });

    document.getElementById("codes-copy").addEventListener("click", async () => {
      try {
        await navigator.clipboard.writeText(codes.join("\n"));
        show(notice, t("codes-copied"));
      } catch {
        // No clipboard (an insecure origin, a refusal): select the list to copy by hand.
        window.getSelection().selectAllChildren(codesList);
      }
    });

    document.getElementById("codes-download").addEventListener("click", () => {
      const text = [t("codes-file-title", { email: email() }), t("codes-file-note"), "", ...codes, ""];
      const link = document.createElement("a");
      link.href = URL.createObjectURL(new Blob([text.join("\n")], { type: "text/plain" }));
      link.download = "keyturn-recovery-codes.txt";
      document.body.append(link);
      link.click();
      link.remove();
      setTimeout(() => URL.revokeObjectURL(link.href), 1000);
    });

    document.getElementById("codes-done").addEventListener("click", () => {
      codes = [];
      codesList.replaceChildren();
      showView("on");
      regenerateButton.focus();
      reload();
    });

    return {
      // From the account's mfa_enabled; a setup or codes on screen stay until dealt with.
      render(enabled) {
        if (view === "setup" || view === "codes") return;
        showView(enabled ? "on" : "off");
      },
    };
  }

  function setupDashboard() {
    const pageError = document.getElementById("page-error");
    const sessionsList = document.getElementById("sessions");
    const sessionsStatus = document.getElementById("sessions-status");
    const logoutButton = document.getElementById("logout");
    const everywhereButton = document.getElementById("logout-everywhere");
    const reloadButton = document.getElementById("reload");
    let currentEmail = "";
    let mfaEnabled = false;
    const recently = setupReauthentication(() => mfaEnabled);
    const security = setupSecurity(recently, () => currentEmail, () => load());

    function signedOut(reason) {
      if (channel) channel.postMessage({ type: "signed-out" });
      goToLogin(reason);
    }

    function fail(error) {
      if (error instanceof SignedOut) {
        signedOut("expired");
        return;
      }
      formError(pageError, error instanceof ApiError ? explain(error) : t("reload-to-retry"));
    }

    function renderUser(user) {
      currentEmail = user.email;
      mfaEnabled = user.mfa_enabled === true;
      security.render(mfaEnabled);
      // Only an explicit false: a server without address verification sends no flag at all.
      document.getElementById("verify-banner").hidden = user.email_verified !== false;
      document.getElementById("user-email").textContent = user.email;
      document.getElementById("user-username").textContent = user.username || "—";
      document.getElementById("user-roles").textContent = user.roles.join(", ");
      document.getElementById("user-created").textContent = absolute.format(new Date(user.created_at));
      document.getElementById("account").hidden = false;
      document.getElementById("account-loading").hidden = true;
    }

    function renderSessions(sessions) {
      sessionsList.replaceChildren();
      // This device first, then the API's order: most recently used first.
      const ordered = [...sessions].sort((a, b) => Number(b.current) - Number(a.current));
      for (const session of ordered) {
        const device = describeDevice(session.user_agent);
        const item = document.createElement("li");
        item.className = "session";
        item.dataset.sessionId = session.id;

        const info = document.createElement("div");
        info.className = "session-info";
        const name = document.createElement("div");
        name.className = "session-device";
        const deviceName = document.createElement("span");
        deviceName.className = "session-name";
        deviceName.textContent = device;
        name.append(deviceName);
        if (session.current) {
          const badge = document.createElement("span");
          badge.className = "badge";
          badge.textContent = t("this-device");
          name.append(badge);
        }
        const meta = document.createElement("p");
        meta.className = "session-meta";
        const ip = session.ip || t("ip-unknown");
        meta.append(
          // last_used_at is the session's latest login or refresh, not its latest request.
          ...tNodes("session-meta", {
            ip,
            ago: timeElement(session.last_used_at, ago(new Date(session.last_used_at))),
            when: timeElement(session.created_at, absolute.format(new Date(session.created_at))),
          }),
        );
        info.append(name, meta);

        const button = document.createElement("button");
        button.type = "button";
        button.className = "secondary";
        const where = document.createElement("span");
        where.className = "visually-hidden";
        const which = session.current ? "revoke-which-current" : "revoke-which";
        where.textContent = ` ${t(which, { device, ip })}`;
        button.append(t("revoke"), where);
        button.addEventListener("click", () => revoke(session, button));

        item.append(info, button);
        sessionsList.append(item);
      }
      sessionsStatus.textContent = tCount("sessions-count", sessions.length);
    }

    async function load() {
      hide(pageError);
      try {
        // In parallel on purpose: they may meet an expired token and share one refresh.
        const [me, found, linked] = await Promise.all([
          api("GET", "/api/auth/me"),
          api("GET", "/api/auth/sessions"),
          identitiesList ? api("GET", "/api/auth/identities") : null,
        ]);
        renderUser(me.user);
        renderSessions(found.sessions);
        if (linked) renderIdentities(linked.identities);
      } catch (error) {
        fail(error);
      }
    }

    // ---- Sign-in providers: the linked ones with an Unlink button each, and a Link button
    // per configured provider (a CSRF-checked POST whose answer says where to go).
    const identitiesList = document.getElementById("identities");
    const identitiesStatus = document.getElementById("identities-status");
    const identitiesError = document.getElementById("identities-error");
    const providerNames = new Map(
      [...document.querySelectorAll("[data-link-provider]")].map((button) => [
        button.dataset.linkProvider,
        button.dataset.providerName,
      ]),
    );

    function renderIdentities(identities) {
      identitiesList.replaceChildren();
      for (const identity of identities) {
        const provider = providerNames.get(identity.provider) || identity.provider;
        const email = identity.email || "—";
        const item = document.createElement("li");
        item.className = "session";
        const info = document.createElement("div");
        info.className = "session-info";
        const name = document.createElement("div");
        name.className = "session-device";
        name.textContent = provider;
        const meta = document.createElement("p");
        meta.className = "session-meta";
        meta.append(
          ...tNodes("identity-meta", {
            email,
            when: timeElement(identity.created_at, absolute.format(new Date(identity.created_at))),
          }),
        );
        info.append(name, meta);
        const button = document.createElement("button");
        button.type = "button";
        button.className = "secondary";
        const which = document.createElement("span");
        which.className = "visually-hidden";
        which.textContent = ` ${t("unlink-which", { provider, email })}`;
        button.append(t("unlink"), which);
        button.addEventListener("click", () => unlink(identity, provider, button));
        item.append(info, button);
        identitiesList.append(item);
      }
      identitiesStatus.textContent = identities.length
        ? tCount("identities-count", identities.length)
        : t("no-identities");
      // A provider already linked is not offered again.
      const linked = new Set(identities.map((identity) => identity.provider));
      for (const button of document.querySelectorAll("[data-link-provider]")) {
        button.parentElement.hidden = linked.has(button.dataset.linkProvider);
      }
    }

    async function unlink(identity, provider, button) {
      hide(identitiesError);
      button.disabled = true;
      try {
        await api("DELETE", `/api/auth/identities/${encodeURIComponent(identity.id)}`);
      } catch (error) {
        button.disabled = false;
        if (error instanceof ApiError) {
          formError(identitiesError, explain(error));
          return;
        }
        fail(error);
        return;
      }
      const linked = await api("GET", "/api/auth/identities").catch(fail);
      if (linked) renderIdentities(linked.identities);
      // The button is gone with its row: the heading is where the reader goes on from.
      identitiesStatus.textContent = t("unlinked", { provider });
      document.getElementById("identities-heading").focus();
    }

    for (const button of document.querySelectorAll("[data-link-provider]")) {
      button.addEventListener("click", async () => {
        hide(identitiesError);
        button.disabled = true;
        try {
          const started = await api(
            "POST",
            `/api/auth/oidc/${encodeURIComponent(button.dataset.linkProvider)}/link`,
          );
          window.location.assign(started.location);
        } catch (error) {
          button.disabled = false;
          if (error instanceof ApiError) {
            formError(identitiesError, explain(error));
            return;
          }
          fail(error);
        }
      });
    }

    async function revoke(session, button) {
      button.disabled = true;
      try {
        await api("DELETE", `/api/auth/sessions/${encodeURIComponent(session.id)}`);
      } catch (error) {
        button.disabled = false;
        fail(error);
        return;
      }
      if (session.current) {
        signedOut("signed_out");
        return;
      }
      sessionsStatus.textContent = t("revoked", { device: describeDevice(session.user_agent) });
      await load();
      reloadButton.focus();
    }

    async function end(path, button) {
      button.disabled = true;
      try {
        await api("POST", path);
      } catch (error) {
        if (!(error instanceof SignedOut)) {
          button.disabled = false;
          fail(error);
          return;
        }
      }
      signedOut("signed_out");
    }

    // The flow every account form here shares: its own checks first (every problem at once,
    // each under its field), then the call with the button disabled so it is sent once.
    // `check` returns [field id, message] pairs; `submit` makes the call and its result goes
    // to `done`; `onError` handles the errors only this form knows and says whether it did.
    // A sign-out, a lockout (`sentence` says why) and anything else are handled alike.
    function handleForm({ form, summary, notice, button, check, submit, done, onError, sentence }) {
      const label = button.textContent;
      form.addEventListener("submit", async (event) => {
        event.preventDefault();
        clearErrors(form, summary);
        if (notice) hide(notice);
        const found = check();
        if (found.length) {
          const inputs = found.map(([id, message]) => fieldError(id, message));
          fieldsSummary(summary, found.length);
          inputs[0].focus();
          return;
        }
        button.disabled = true;
        let result;
        try {
          result = await submit();
        } catch (error) {
          button.disabled = false;
          if (error instanceof SignedOut) fail(error);
          else if (error instanceof Cancelled) return;
          else if (onError(error)) return;
          else if (error.status === 429) lockOut(button, summary, error.retryAfter, label, sentence);
          else formError(summary, explain(error));
          return;
        }
        await done(result);
      });
    }

    function setupPasswordChange() {
      const form = document.getElementById("password-form");
      const notice = document.getElementById("password-notice");
      const summary = document.getElementById("password-form-error");
      const current = document.getElementById("current-password");
      const next = document.getElementById("new-password");
      const button = document.getElementById("password-submit");
      handleForm({
        form,
        summary,
        notice,
        button,
        check() {
          const found = [];
          if (!current.value) found.push(["current-password", t("enter-current-password")]);
          const weak = newPasswordProblem(next, "choose-new-password");
          if (weak) found.push(["new-password", weak]);
          return found;
        },
        submit: () =>
          recently(() =>
            api("POST", "/api/auth/password", {
              current_password: current.value,
              new_password: next.value,
            }),
          ),
        async done() {
          button.disabled = false;
          form.reset();
          show(notice, t("password-changed"));
          await load();
        },
        onError(error) {
          const reasons = Array.isArray(error.body && error.body.reasons) ? error.body.reasons : [];
          if (error.code === "invalid_credentials") {
            current.value = "";
            fieldError("current-password", t("not-current-password")).focus();
          } else if (error.code === "weak_password" && reasons.length) {
            fieldError("new-password", sentenceWithList(t("stronger"), reasons.map(translateReason)));
            formError(summary, t("new-not-accepted"));
          } else {
            return false;
          }
          return true;
        },
      });
    }

    function setupAccountDeletion() {
      const password = document.getElementById("delete-password");
      handleForm({
        form: document.getElementById("delete-form"),
        summary: document.getElementById("delete-form-error"),
        button: document.getElementById("delete-submit"),
        check: () => (password.value ? [] : [["delete-password", t("confirm-with-password")]]),
        submit: () => api("POST", "/api/auth/account/delete", { current_password: password.value }),
        // Leaving the page: the button stays disabled.
        done: () => signedOut("deleted"),
        onError(error) {
          if (error.code !== "invalid_credentials") return false;
          password.value = "";
          fieldError("delete-password", t("not-your-password")).focus();
          return true;
        },
      });
    }

    function setupVerifyBanner() {
      const button = document.getElementById("verify-resend");
      const status = document.getElementById("verify-status");
      const label = button.textContent;
      button.addEventListener("click", async () => {
        button.disabled = true;
        hide(status);
        try {
          await api("POST", "/api/auth/email/verify/resend");
        } catch (error) {
          button.disabled = false;
          if (error instanceof SignedOut) fail(error);
          else if (error.status === 429) lockOut(button, status, error.retryAfter, label, "too-many");
          else show(status, explain(error));
          return;
        }
        button.disabled = false;
        show(status, t("resend-sent", { email: currentEmail }));
      });
    }

    function setupEmailChange() {
      const form = document.getElementById("email-form");
      const notice = document.getElementById("email-notice");
      const address = document.getElementById("new-email");
      const password = document.getElementById("email-password");
      const button = document.getElementById("email-submit");
      handleForm({
        form,
        summary: document.getElementById("email-form-error"),
        notice,
        button,
        sentence: "too-many",
        check() {
          const found = [];
          const shape = emailProblem(address);
          if (shape) found.push(["new-email", shape]);
          if (!password.value) found.push(["email-password", t("enter-password")]);
          return found;
        },
        async submit() {
          const newEmail = address.value.trim();
          await recently(() =>
            api("POST", "/api/auth/email/change", {
              new_email: newEmail,
              current_password: password.value,
            }),
          );
          return newEmail;
        },
        done(newEmail) {
          button.disabled = false;
          form.reset();
          show(notice, t("email-change-sent", { email: newEmail }));
        },
        onError(error) {
          if (error.code === "invalid_credentials") {
            password.value = "";
            fieldError("email-password", t("not-current-password")).focus();
          } else if (error.code === "email_taken" || error.code === "invalid_email") {
            fieldError("new-email", explain(error)).focus();
          } else {
            return false;
          }
          return true;
        },
      });
    }

    logoutButton.addEventListener("click", () => end("/api/auth/logout", logoutButton));
    everywhereButton.addEventListener("click", () =>
      end("/api/auth/logout-all", everywhereButton),
    );
    reloadButton.addEventListener("click", load);
    setupVerifyBanner();
    setupEmailChange();
    setupPasswordChange();
    setupAccountDeletion();
    setupPasskeys(fail);
    if (channel) {
      channel.addEventListener("message", (event) => {
        if (event.data && event.data.type === "signed-out") goToLogin("signed_out");
      });
    }
    load();
  }

  // ---- Passkeys (WebAuthn) --------------------------------------------------------------------

  // WebAuthn speaks ArrayBuffers, Keyturn's API base64url text (WebAuthn's own JSON form).
  function fromBase64url(text) {
    const base64 = text.replace(/-/g, "+").replace(/_/g, "/");
    const binary = atob(base64 + "=".repeat((4 - (base64.length % 4)) % 4));
    const bytes = new Uint8Array(binary.length);
    for (let index = 0; index < binary.length; index += 1) bytes[index] = binary.charCodeAt(index);
    return bytes.buffer;
  }

  function toBase64url(buffer) {
    let binary = "";
    for (const byte of new Uint8Array(buffer)) binary += String.fromCharCode(byte);
    return btoa(binary).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
  }

  function withBinaryIds(descriptors) {
    return (descriptors || []).map((descriptor) => ({ ...descriptor, id: fromBase64url(descriptor.id) }));
  }

  function creationOptions(json) {
    return {
      ...json,
      challenge: fromBase64url(json.challenge),
      user: { ...json.user, id: fromBase64url(json.user.id) },
      excludeCredentials: withBinaryIds(json.excludeCredentials),
    };
  }

  function requestOptions(json) {
    return {
      ...json,
      challenge: fromBase64url(json.challenge),
      allowCredentials: withBinaryIds(json.allowCredentials),
    };
  }

  // What PublicKeyCredential.toJSON() gives, for browsers that lack it.
  function credentialJson(credential) {
    const answer = credential.response;
    const response = { clientDataJSON: toBase64url(answer.clientDataJSON) };
    if (answer.attestationObject) {
      response.attestationObject = toBase64url(answer.attestationObject);
      response.transports = typeof answer.getTransports === "function" ? answer.getTransports() : [];
    } else {
      response.authenticatorData = toBase64url(answer.authenticatorData);
      response.signature = toBase64url(answer.signature);
      response.userHandle = answer.userHandle ? toBase64url(answer.userHandle) : null;
    }
    return {
      id: credential.id,
      rawId: toBase64url(credential.rawId),
      type: credential.type,
      response,
      clientExtensionResults: credential.getClientExtensionResults(),
      authenticatorAttachment: credential.authenticatorAttachment || null,
    };
  }

  function hasPasskeys() {
    return "PublicKeyCredential" in window && Boolean(navigator.credentials);
  }

  // The browser's own refusals: closed, timed out or not allowed; or (creating) a passkey
  // of this account is on the authenticator already.
  function isCancelled(error) {
    return error && (error.name === "NotAllowedError" || error.name === "AbortError");
  }

  function setupPasskeyLogin(summary, remember, setBusy) {
    const part = document.getElementById("passkey-login");
    const button = document.getElementById("passkey-login-button");
    if (!part || !hasPasskeys()) return;
    part.hidden = false;
    const label = button.textContent;
    button.addEventListener("click", async () => {
      hide(summary);
      setBusy(true);
      const finish = (sentence) => {
        setBusy(false);
        if (sentence) formError(summary, sentence);
      };
      let response;
      try {
        const options = await send("POST", "/api/auth/passkeys/login/options", {});
        if (!options.ok) throw new ApiError(options, await bodyOf(options));
        const credential = await navigator.credentials.get({
          publicKey: requestOptions(await options.json()),
        });
        response = await send(
          "POST",
          "/api/auth/passkeys/login",
          { credential: credentialJson(credential), remember_me: remember.checked },
          { "X-Auth-Mode": "cookie" },
        );
      } catch (error) {
        if (error instanceof ApiError) finish(explain(error));
        else if (isCancelled(error)) finish(t("passkey-sign-in-cancelled"));
        else if (error instanceof TypeError) finish(t("unreachable"));
        else finish(t("passkey-not-accepted"));
        return;
      }
      if (response.ok) {
        window.location.assign("/dashboard");
        return;
      }
      const error = new ApiError(response, await bodyOf(response));
      setBusy(false);
      if (error.status === 429) lockOut(button, summary, error.retryAfter, label);
      else if (error.code === "invalid_credential") formError(summary, t("passkey-not-accepted"));
      else formError(summary, explain(error));
    });
  }

  function setupPasskeys(fail) {
    const list = document.getElementById("passkeys");
    const status = document.getElementById("passkeys-status");
    const notice = document.getElementById("passkey-notice");
    const form = document.getElementById("passkey-form");
    const summary = document.getElementById("passkey-form-error");
    const nameInput = document.getElementById("passkey-name");
    const addButton = document.getElementById("passkey-add");
    if (!list) return;
    if (!hasPasskeys()) {
      document.getElementById("passkeys-unsupported").hidden = false;
      form.hidden = true;
    }

    function said(sentence) {
      hide(summary);
      show(notice, sentence);
    }

    function failed(error) {
      if (error instanceof SignedOut || !(error instanceof ApiError)) fail(error);
      else formError(summary, explain(error));
    }

    function actionButton(key, name, onClick) {
      const button = document.createElement("button");
      button.type = "button";
      button.className = "secondary";
      const which = document.createElement("span");
      which.className = "visually-hidden";
      which.textContent = ` ${t("passkey-which", { name })}`;
      button.append(t(key), which);
      button.addEventListener("click", onClick);
      return button;
    }

    function renameForm(passkey, item, info, actions, renameButton) {
      const editor = document.createElement("form");
      editor.className = "passkey-rename";
      editor.noValidate = true;
      const input = document.createElement("input");
      input.type = "text";
      input.maxLength = 64;
      input.value = passkey.name;
      input.setAttribute("aria-label", t("passkey-new-name", { name: passkey.name }));
      const save = document.createElement("button");
      save.type = "submit";
      save.className = "secondary";
      save.textContent = t("passkey-save");
      const cancel = document.createElement("button");
      cancel.type = "button";
      cancel.className = "secondary";
      cancel.textContent = t("passkey-cancel");
      editor.append(input, save, cancel);

      const close = () => {
        editor.remove();
        info.hidden = false;
        actions.hidden = false;
        renameButton.focus();
      };
      cancel.addEventListener("click", close);
      editor.addEventListener("keydown", (event) => {
        if (event.key === "Escape") close();
      });
      editor.addEventListener("submit", async (event) => {
        event.preventDefault();
        const name = input.value.trim();
        if (!name) {
          input.setAttribute("aria-invalid", "true");
          formError(summary, t("passkey-enter-name"));
          input.focus();
          return;
        }
        save.disabled = true;
        try {
          await api("PATCH", `/api/auth/passkeys/${encodeURIComponent(passkey.id)}`, { name });
        } catch (error) {
          save.disabled = false;
          failed(error);
          return;
        }
        said(t("passkey-renamed", { name }));
        await load();
        status.focus();
      });
      info.hidden = true;
      actions.hidden = true;
      item.prepend(editor);
      input.focus();
      input.select();
    }

    async function remove(passkey, button) {
      if (!window.confirm(t("passkey-confirm-remove", { name: passkey.name }))) return;
      button.disabled = true;
      try {
        await api("DELETE", `/api/auth/passkeys/${encodeURIComponent(passkey.id)}`);
      } catch (error) {
        button.disabled = false;
        failed(error);
        return;
      }
      said(t("passkey-removed", { name: passkey.name }));
      await load();
      nameInput.focus();
    }

    function render(passkeys) {
      list.replaceChildren();
      for (const passkey of passkeys) {
        const item = document.createElement("li");
        item.classList.add("session", "passkey");
        item.dataset.passkeyId = passkey.id;
        const info = document.createElement("div");
        info.className = "session-info";
        const name = document.createElement("div");
        name.classList.add("session-device", "session-name");
        name.textContent = passkey.name;
        const meta = document.createElement("p");
        meta.className = "session-meta";
        const used = passkey.last_used_at
          ? timeElement(passkey.last_used_at, ago(new Date(passkey.last_used_at)))
          : t("passkey-never-used");
        meta.append(
          ...tNodes("passkey-meta", {
            when: timeElement(passkey.created_at, absolute.format(new Date(passkey.created_at))),
            ago: used,
          }),
        );
        info.append(name, meta);
        const actions = document.createElement("div");
        actions.className = "passkey-actions";
        const renameButton = actionButton("passkey-rename", passkey.name, () =>
          renameForm(passkey, item, info, actions, renameButton),
        );
        const removeButton = actionButton("passkey-remove", passkey.name, () =>
          remove(passkey, removeButton),
        );
        actions.append(renameButton, removeButton);
        item.append(info, actions);
        list.append(item);
      }
      status.textContent = passkeys.length
        ? tCount("passkeys-count", passkeys.length)
        : t("passkeys-none");
    }

    async function load() {
      try {
        render((await api("GET", "/api/auth/passkeys")).passkeys);
      } catch (error) {
        fail(error);
      }
    }

    form.addEventListener("submit", async (event) => {
      event.preventDefault();
      clearErrors(form, summary);
      hide(notice);
      addButton.disabled = true;
      try {
        const options = await api("POST", "/api/auth/passkeys/register/options");
        let credential;
        try {
          credential = await navigator.credentials.create({ publicKey: creationOptions(options) });
        } catch (error) {
          addButton.disabled = false;
          if (error && error.name === "InvalidStateError") formError(summary, t("passkey-exists"));
          else if (isCancelled(error)) formError(summary, t("passkey-create-cancelled"));
          else formError(summary, t("passkey-not-verified"));
          return;
        }
        const body = { credential: credentialJson(credential) };
        const name = nameInput.value.trim();
        if (name) body.name = name;
        const added = await api("POST", "/api/auth/passkeys/register", body);
        addButton.disabled = false;
        form.reset();
        said(t("passkey-added", { name: added.passkey.name }));
        await load();
      } catch (error) {
        addButton.disabled = false;
        failed(error);
      }
    });
    status.tabIndex = -1;
    load();
  }

  // ---- Accounts by email -----------------------------------------------------------------------

  // A link's token travels in the fragment (#token=...), which the browser never sends to a
  // server. It is read once and wiped from the address bar and the history entry, so it is
  // not left behind for the next person at this browser.
  function takeTokenFromFragment() {
    const token = new URLSearchParams(window.location.hash.slice(1)).get("token") || "";
    if (window.location.hash) {
      window.history.replaceState(null, "", window.location.pathname + window.location.search);
    }
    return token;
  }

  // The language switch reloads the page; a token still unused goes along in the fragment,
  // which a redirect without one of its own keeps (RFC 9110 §10.2.2).
  function keepTokenAcrossLanguageSwitch(token) {
    for (const link of document.querySelectorAll("a[data-lang-switch]")) {
      link.href = `${link.href.split("#")[0]}#token=${encodeURIComponent(token)}`;
    }
  }

  function setupForgotPassword() {
    const form = document.getElementById("forgot-form");
    const summary = document.getElementById("form-error");
    const notice = document.getElementById("notice");
    const email = document.getElementById("email");
    const button = document.getElementById("forgot-submit");
    const label = button.textContent;
    email.focus();

    form.addEventListener("submit", async (event) => {
      event.preventDefault();
      clearErrors(form, summary);
      hide(notice);
      const problem = emailProblem(email);
      if (problem) {
        fieldError("email", problem).focus();
        return;
      }
      const address = email.value.trim();
      button.disabled = true;
      let response;
      try {
        response = await send("POST", "/api/auth/password/forgot", { email: address });
      } catch {
        button.disabled = false;
        formError(summary, t("unreachable"));
        return;
      }
      button.disabled = false;
      if (response.status === 202) {
        // The same answer for every address: whether an account exists is not told here.
        show(notice, t("forgot-sent", { email: address }));
        return;
      }
      const error = new ApiError(response, await bodyOf(response));
      if (error.status === 429) lockOut(button, summary, error.retryAfter, label, "too-many");
      else if (error.code === "invalid_email") fieldError("email", explain(error)).focus();
      else formError(summary, explain(error));
    });
  }

  function setupResetPassword() {
    const form = document.getElementById("reset-form");
    const summary = document.getElementById("form-error");
    const password = document.getElementById("new-password");
    const button = document.getElementById("reset-submit");
    const label = button.textContent;
    const token = takeTokenFromFragment();
    if (!token) {
      form.hidden = true;
      document.getElementById("no-token").hidden = false;
      return;
    }
    keepTokenAcrossLanguageSwitch(token);
    password.focus();

    form.addEventListener("submit", async (event) => {
      event.preventDefault();
      clearErrors(form, summary);
      const weak = newPasswordProblem(password, "choose-new-password");
      if (weak) {
        fieldError("new-password", weak).focus();
        return;
      }
      button.disabled = true;
      let response;
      try {
        response = await send("POST", "/api/auth/password/reset", {
          token,
          new_password: password.value,
        });
      } catch {
        button.disabled = false;
        formError(summary, t("unreachable"));
        return;
      }
      if (response.status === 204) {
        // Every session of the account has ended, this browser's too.
        if (channel) channel.postMessage({ type: "signed-out" });
        window.location.assign("/login?password_reset=1");
        return;
      }
      button.disabled = false;
      const error = new ApiError(response, await bodyOf(response));
      const reasons = Array.isArray(error.body.reasons) ? error.body.reasons : [];
      if (error.code === "invalid_token") {
        form.hidden = true;
        formError(summary, t("reset-link-invalid"));
      } else if (error.code === "weak_password" && reasons.length) {
        fieldError("new-password", sentenceWithList(t("stronger"), reasons.map(translateReason)));
        formError(summary, t("new-not-accepted"));
      } else if (error.status === 429) {
        lockOut(button, summary, error.retryAfter, label, "too-many");
      } else {
        formError(summary, explain(error));
      }
    });
  }

  async function setupVerifyEmail() {
    const progress = document.getElementById("verify-progress");
    const notice = document.getElementById("notice");
    const summary = document.getElementById("form-error");
    const token = takeTokenFromFragment();
    const done = (element, content) => {
      progress.hidden = true;
      if (element === summary) formError(summary, content);
      else show(element, content);
    };
    if (!token) {
      done(summary, t("no-token"));
      return;
    }
    let response;
    try {
      response = await send("POST", "/api/auth/email/verify", { token });
    } catch {
      done(summary, t("unreachable"));
      return;
    }
    const body = await bodyOf(response);
    if (response.ok) {
      done(notice, t("verified", { email: (body && body.user && body.user.email) || "" }));
      return;
    }
    const error = new ApiError(response, body);
    done(summary, error.code === "invalid_token" ? t("verify-link-invalid") : explain(error));
  }

  const setups = {
    login: setupLogin,
    register: setupRegister,
    dashboard: setupDashboard,
    "forgot-password": setupForgotPassword,
    "reset-password": setupResetPassword,
    "verify-email": setupVerifyEmail,
  };
  setupReveal();
  const setup = setups[document.body.dataset.page];
  if (setup) setup();
})();
