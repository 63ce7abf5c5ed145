// The tutorials' stack for the side-by-side (bench/express_side_by_side.py): Express 5 and
// jsonwebtoken, written carefully: the HS256 secret is a KeyObject (a string secret is parsed
// again on every call), users sit in a Map, and /api/auth/me answers what Keyturn's answers.
"use strict";
const crypto = require("node:crypto");
const fs = require("node:fs");
const express = require("express");
const jwt = require("jsonwebtoken");

const [port, userCount, tokenFile] = process.argv.slice(2);
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
app.listen(Number(port), "127.0.0.1");
