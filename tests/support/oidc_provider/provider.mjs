// A real OpenID Connect provider for Keyturn's tests: `node provider.mjs PORT`.
//
// Issuer http://localhost:PORT, listening on 127.0.0.1. Its built-in development pages do the
// login (any password; the login name is the account) and the consent. Accounts:
//   - a login starting with "unverified" has an address the provider does not vouch for
//     (email_verified false);
//   - any other login has a verified address: LOGIN@example.com, or LOGIN itself when it
//     already holds an @.
// Clients: "keyturn" and "keyturn-other" (two providers of one Keyturn), secret below, code
// flow with PKCE (S256). Their redirect URIs are Keyturn's callbacks on any test origin.
import crypto from 'node:crypto';

import Provider from 'oidc-provider';

const port = Number(process.argv[2]);
if (!Number.isInteger(port) || port <= 0) {
  console.error('usage: node provider.mjs PORT');
  process.exit(2);
}
const issuer = `http://localhost:${port}`;
const CLIENT_SECRET = 'keyturn-test-client-secret-0123456789';

function accountOf(id) {
  const login = String(id).trim();
  if (!login) return undefined;
  const email = login.includes('@') ? login : `${login}@example.com`;
  return {
    accountId: login,
    async claims() {
      return {
        sub: login,
        email,
        email_verified: !login.startsWith('unverified'),
        name: login,
      };
    },
  };
}

const { privateKey } = crypto.generateKeyPairSync('ec', { namedCurve: 'P-256' });
const signingKey = { ...privateKey.export({ format: 'jwk' }), kid: 'test-es256', use: 'sig', alg: 'ES256' };

const client = (clientId) => ({
  client_id: clientId,
  client_secret: CLIENT_SECRET,
  redirect_uris: [`http://keyturn.test/api/auth/oidc/local/callback`],
  grant_types: ['authorization_code'],
  response_types: ['code'],
  token_endpoint_auth_method: 'client_secret_basic',
  id_token_signed_response_alg: 'ES256',
});

const provider = new Provider(issuer, {
  clients: [client('keyturn'), client('keyturn-other')],
  async findAccount(_ctx, id) {
    return accountOf(id);
  },
  claims: { openid: ['sub'], email: ['email', 'email_verified'], profile: ['name'] },
  // The address goes into the ID token itself, as Google's does.
  conformIdTokenClaims: false,
  jwks: { keys: [signingKey] },
  cookies: { keys: [crypto.randomBytes(32).toString('hex')] },
  features: { devInteractions: { enabled: true } },
  pkce: { required: () => true },
});

// Keyturn's callback is /api/auth/oidc/{provider}/callback on whatever origin a test serves
// it from (a random port): accept that path on the test hosts only.
const CALLBACK = /^\/api\/auth\/oidc\/[a-z0-9-]+\/callback$/;
const TEST_HOSTS = new Set(['127.0.0.1', 'localhost', 'keyturn.test']);
const registered = provider.Client.prototype.redirectUriAllowed;
provider.Client.prototype.redirectUriAllowed = function redirectUriAllowed(value) {
  try {
    const url = new URL(value);
    if (url.protocol === 'http:' && TEST_HOSTS.has(url.hostname) && CALLBACK.test(url.pathname)
        && !url.search && !url.hash) {
      return true;
    }
  } catch {
    return false;
  }
  return registered.call(this, value);
};

provider.listen(port, '127.0.0.1', () => {
  console.log(`oidc-provider listening on ${issuer}`);
});
