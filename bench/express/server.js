// The tutorials' stack for the side-by-side (bench/express_side_by_side.py): Express 5 and
// jsonwebtoken, written carefully: the HS256 secret is a KeyObject (a string secret is parsed
// again on every call), users sit in a Map, and /api/auth/me answers what Keyturn's answers.
// /api/auth/refresh rotates opaque refresh tokens kept in a Map, as the tutorials do: the
// presented token is looked up and deleted, a new access token and refresh token come back.
"use strict";
const crypto = require("node:crypto");
const fs = require("node:fs");
const express = require("express");
const jwt = require("jsonwebtoken");

const [port, userCount, tokenFile, refreshFile, refreshCount] = process.argv.slice(2);
const secret = crypto.createSecretKey(crypto.randomBytes(32));
const users = new Map();
const tokens = [];
for (let n = 0; n < Number(userCount); n++) {
  const id = crypto.randomUUID().replaceAll("-", "");
  const createdAt = new Date().toISOString();
  users.set(id, { id, email: `user-${n}@example.com`, username: null, roles: ["user"], created_at: createdAt });
  const claims = { sub: id, sid: crypto.randomUUID(), jti: crypto.randomUUID(), roles: ["user"] };
  tokens.push(jwt.sign(claims, secret, { algorithm: "HS256", expiresIn: "1h" }));
}
fs.writeFileSync(tokenFile, tokens.join("\n") + "\n");

const refreshTokens = new Map();
function issue(userId, sessionId) {
  const claims = { sub: userId, sid: sessionId, jti: crypto.randomUUID(), roles: ["user"] };
  const accessToken = jwt.sign(claims, secret, { algorithm: "HS256", expiresIn: "15m" });
  const refreshToken = crypto.randomBytes(32).toString("base64url");
  refreshTokens.set(refreshToken, { userId, sessionId, expiresAt: Date.now() + 30 * 86400e3 });
  return { access_token: accessToken, refresh_token: refreshToken, token_type: "Bearer", expires_in: 900 };
}
const userIds = [...users.keys()];
const chains = [];
for (let n = 0; n < Number(refreshCount || 0); n++) {
  chains.push(issue(userIds[n % userIds.length], crypto.randomUUID()).refresh_token);
}
if (refreshFile) {
  fs.writeFileSync(refreshFile, chains.join("\n") + "\n");
}

function requireAuth(req, res, next) {
  const header = req.get("authorization") || "";
  if (!header.startsWith("Bearer ")) {
    return res.status(401).json({ error: "missing_token", message: "Send a Bearer token." });
  }
  try {
    req.claims = jwt.verify(header.slice(7), secret, { algorithms: ["HS256"] });
    return next();
  } catch (error) {
    return res.status(401).json({ error: "invalid_token", message: "The token is not valid." });
  }
}

const app = express();
app.disable("x-powered-by");
app.get("/healthz", (req, res) => res.json({ status: "ok" }));
app.get("/api/auth/me", requireAuth, (req, res) => {
  const user = users.get(req.claims.sub);
  if (!user) {
    return res.status(401).json({ error: "invalid_token", message: "No such account." });
  }
  return res.json({ user });
});
app.post("/api/auth/refresh", express.json(), (req, res) => {
  const presented = req.body && req.body.refresh_token;
  const record = typeof presented === "string" ? refreshTokens.get(presented) : undefined;
  if (!record || record.expiresAt < Date.now() || !users.has(record.userId)) {
    return res.status(401).json({ error: "invalid_grant", message: "The refresh token is not valid." });
  }
  refreshTokens.delete(presented);
  return res.json(issue(record.userId, record.sessionId));
});
app.listen(Number(port), "127.0.0.1");
