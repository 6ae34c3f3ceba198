// The test IdP's behaviour switches: documented behaviours of real IdPs, one switch each.
//
// server.mjs reads them from IDP_SWITCHES (a JSON object; unknown names or bad values stop the
// process with exit 2). Named sets of switches (personas: okta, entra, google, ...) live in ONE
// place, tests/support/personas.py, with the vendor documentation for each choice; the URLs
// below say which vendor behaviour each switch value emulates. The default of every switch is
// the behaviour this IdP had before switches existed (persona "default").

const scopeList = (v) => Array.isArray(v) && v.every((s) => typeof s === 'string' && /^[\x21-\x7e]+$/.test(s));
const oneOf = (...values) => (v) => values.includes(v);
const bool = (v) => typeof v === 'boolean';
const seconds = (v) => v === null || (Number.isInteger(v) && v > 0);
const secondsOrZero = (v) => Number.isInteger(v) && v >= 0;

export const SWITCHES = {
  // ----- scopes at the authorization (and device authorization) endpoint -----------------
  // Scopes silently left out of the grant (the request still succeeds), e.g. offline_access
  // when the user/client may not have it: Keycloak grants it only with the offline_access role
  // and client scope (https://docs.redhat.com/zh-cn/documentation/red_hat_build_of_keycloak/22.0/html/server_administration_guide/offline-access).
  drop_scopes: { default: [], valid: scopeList },
  // Scopes refused with error=invalid_scope (redirected to the client; a device authorization
  // request gets 400 invalid_scope): Cognito knows no offline_access (its scopes:
  // https://docs.aws.amazon.com/cdk/api/v2/python/aws_cdk.aws_cognito/OAuthSettings.html; refresh
  // tokens come with every code grant, https://docs.aws.amazon.com/cognito/latest/developerguide/token-endpoint.html),
  // nor does Google
  // (https://developers.google.com/identity/protocols/oauth2/native-app: access_type=offline).
  refuse_scopes: { default: [], valid: scopeList },

  // ----- when a refresh token is issued ---------------------------------------------------
  // "offline_access": only when offline_access was granted (OIDC Core 11; Okta
  //   https://developer.okta.com/docs/guides/refresh-tokens/get-refresh-token/, Entra
  //   https://learn.microsoft.com/en-us/entra/identity-platform/refresh-tokens).
  // "always": with every code/device grant (Cognito
  //   https://docs.aws.amazon.com/cognito/latest/developerguide/amazon-cognito-user-pools-using-the-refresh-token.html).
  // "access_type_offline": only when the authorization request says access_type=offline
  //   (Google https://developers.google.com/identity/protocols/oauth2/native-app); the device
  //   flow always gets one (https://developers.google.com/identity/protocols/oauth2/limited-input-device).
  refresh_token_issue: { default: 'offline_access', valid: oneOf('offline_access', 'always', 'access_type_offline') },
  // Google: a refresh token comes with the FIRST code exchange of a user and client; a later
  // sign-in gets one only when its authorization request says prompt=consent
  // (https://developers.google.com/identity/protocols/oauth2/web-server#offline: "the first time
  // that your application exchanges an authorization code").
  refresh_token_first_grant_only: { default: false, valid: bool },

  // ----- the refresh grant ----------------------------------------------------------------
  // `scope` on a refresh request: "subset" = must not exceed the grant, else invalid_scope
  //   (RFC 6749 section 6; Okta https://developer.okta.com/docs/guides/refresh-tokens/get-refresh-token/;
  //   Keycloak since https://github.com/keycloak/keycloak/pull/12043, see
  //   https://github.com/keycloak/keycloak/issues/24323); "ignored" = dropped, the original grant
  //   is used (Keycloak before that); "required" = missing scope is invalid_request (Entra in
  //   practice: https://learn.microsoft.com/en-us/answers/questions/192699/confusing-error-message-on-failed-refresh-token-re,
  //   https://github.com/golang/oauth2/pull/540); "rejected" = any scope is invalid_request.
  refresh_scope: { default: 'subset', valid: oneOf('subset', 'ignored', 'required', 'rejected') },
  // What a successful refresh returns as refresh_token: "rotate" = a new one (the old one is
  //   consumed: Okta rotation https://developer.okta.com/docs/guides/refresh-tokens/refresh-token-rotation/,
  //   Entra https://learn.microsoft.com/en-us/entra/identity-platform/refresh-tokens);
  //   "same" = the presented one again (Okta persistent tokens for native apps,
  //   https://developer.okta.com/docs/guides/refresh-tokens/get-refresh-token/);
  //   "none" = no refresh_token field, keep using the old one (Cognito without rotation
  //   https://docs.aws.amazon.com/cognito-user-identity-pools/latest/APIReference/API_RefreshTokenRotationType.html, Google).
  refresh_rotation: { default: 'rotate', valid: oneOf('rotate', 'same', 'none') },
  // Okta: a refresh returns a refresh token only when the refresh `scope` (or, without one, the
  // grant) holds offline_access (https://developer.okta.com/docs/guides/refresh-tokens/get-refresh-token/:
  // "refresh_token + offline_access -> refresh token").
  refresh_needs_offline_scope: { default: false, valid: bool },
  // Reuse of a rotated (consumed) refresh token: "revoke_grant" = invalid_grant and the whole
  //   grant dies (Okta reuse detection https://developer.okta.com/docs/guides/refresh-tokens/refresh-token-rotation/,
  //   Auth0 https://auth0.com/docs/secure/tokens/refresh-tokens/refresh-token-rotation);
  //   "allowed" = old tokens stay valid until they expire (Entra: "doesn't revoke old refresh
  //   tokens", https://learn.microsoft.com/en-us/entra/identity-platform/refresh-tokens).
  refresh_reuse: { default: 'revoke_grant', valid: oneOf('revoke_grant', 'allowed') },
  // Seconds a rotated token still works as if unused (Okta grace period; Cognito
  // RetryGracePeriodSeconds 0-60 https://docs.aws.amazon.com/cognito-user-identity-pools/latest/APIReference/API_RefreshTokenRotationType.html;
  // Auth0 rotation overlap period https://auth0.com/docs/tokens/guides/configure-refresh-token-rotation).
  refresh_reuse_grace: { default: 0, valid: secondsOrZero },
  // Absolute lifetime of a refresh-token chain (from the sign-in, across rotations) and idle
  // lifetime (unused for that long: dead), in seconds; null = only IDP_REFRESH_TTL per token.
  // Auth0 maximum/idle lifetime https://auth0.com/docs/tokens/refresh-tokens/configure-refresh-token-expiration;
  // Keycloak SSO Session Max/Idle (https://docs.redhat.com/zh-cn/documentation/red_hat_build_of_keycloak/26.4/html/server_administration_guide/timeouts).
  refresh_absolute_ttl: { default: null, valid: seconds },
  refresh_idle_ttl: { default: null, valid: seconds },
  // A refresh token that dies with the IdP (browser) session (POST /__test/end-sessions):
  // true (PingOne checks the session's validity for refresh tokens,
  // https://developer.pingidentity.com/pingone-api/foundations/authentication-concepts/access-tokens-and-id-tokens/token-validation.html),
  // false, or "without_offline_access" (Keycloak: an ordinary refresh token belongs to
  // the SSO session, an offline token does not,
  // https://docs.redhat.com/zh-cn/documentation/red_hat_build_of_keycloak/22.0/html/server_administration_guide/offline-access).
  refresh_dies_with_session: { default: false, valid: (v) => bool(v) || v === 'without_offline_access' },
  // false: a refresh answers without id_token (PingFederate's default: "Return ID Token On
  // Refresh Grant" is an optional checkbox of the OIDC policy,
  // https://docs.pingidentity.com/r/en-us/pingfederate-103/help_policymanagementtasklet_policymanagementstate;
  // its ID token lifetime defaults to 5 minutes,
  // https://docs.pingidentity.com/pingfederate/latest/administrators_reference_guide/help_policymanagementtasklet_policymanagementstate.html).
  refresh_id_token: { default: true, valid: bool },

  // ----- tokens --------------------------------------------------------------------------
  // "jwt": access tokens are JWTs signed with the IdP key (iss, sub, aud, client_id, scope, exp,
  // iat, jti), as Okta custom authorization servers, Cognito and PingOne issue them
  // (https://developer.pingidentity.com/pingone-api/foundations/authentication-concepts/access-tokens-and-id-tokens.html);
  // "opaque": not JWTs (PingFederate's reference tokens, Google, Okta's org server for us).
  access_token_format: { default: 'opaque', valid: oneOf('opaque', 'jwt') },
  // aud of a JWT access token; null = the client_id (Okta custom AS default: api://default).
  access_token_audience: { default: null, valid: (v) => v === null || (typeof v === 'string' && v.length > 0) },
  // id_token claims: a jti (Okta, Cognito, Keycloak have one; Entra has `uti` instead), the
  // email claims (Entra: optional claim only), aud as an array with azp (OIDC Core 2 allows it).
  id_token_jti: { default: false, valid: bool },
  id_token_email: { default: true, valid: bool },
  id_token_aud: { default: 'string', valid: oneOf('string', 'array') },
  // Issuer http://127.0.0.1:PORT + issuer_path (Okta /oauth2/default, Entra /{tenant}/v2.0,
  // Keycloak /realms/{realm}, Cognito /{pool id}, OneLogin /oidc/2) + "/" when
  // issuer_trailing_slash (Auth0 https://{tenant}.auth0.com/, JumpCloud https://oauth.id.jumpcloud.com/).
  issuer_path: { default: '', valid: (v) => v === '' || (typeof v === 'string' && /^(\/[A-Za-z0-9._~-]+)+$/.test(v)) },
  issuer_trailing_slash: { default: false, valid: bool },
  // The `iss` parameter of RFC 9207 in authorization responses (and
  // authorization_response_iss_parameter_supported in discovery). oidc-provider always sends
  // it; Keycloak does not (https://github.com/keycloak/keycloak/issues/16525).
  authorization_response_iss: { default: true, valid: bool },
  // id_token (and JWT access token) signing algorithm.
  signing_alg: { default: 'RS256', valid: oneOf('RS256', 'ES256') },

  // ----- the client ----------------------------------------------------------------------
  // Loopback redirect host: "127.0.0.1", "localhost", or "loopback" (either). Port: "any"
  // (RFC 8252 section 7.3; Google desktop apps https://developers.google.com/identity/protocols/oauth2/native-app)
  // or "exact" (the registered port only: Cognito takes only registered callback URLs, http only
  // for localhost, https://docs.aws.amazon.com/sdk-for-kotlin/api/latest/cognitoidentityprovider/aws.sdk.kotlin.services.cognitoidentityprovider.model/-create-user-pool-client-request/callback-urls.html;
  // Okta, Auth0 likewise, unconfirmed; the harness picks the port, IDP_REDIRECT_PORT). Entra
  // documents http://localhost exceptions (https://learn.microsoft.com/en-Us/azure/active-directory/develop/reply-url).
  // The path is always /callback.
  redirect_host: { default: '127.0.0.1', valid: oneOf('127.0.0.1', 'localhost', 'loopback') },
  redirect_port: { default: 'any', valid: oneOf('any', 'exact') },
  // Client authentication at the token, device and revocation endpoints: "none" (public
  // client), or a secret (IDP_CLIENT_SECRET) sent as client_secret_post, client_secret_basic
  // (the registered method only: OneLogin has Basic / POST / None (PKCE), one at a time,
  // https://developers.onelogin.com/openid-connect/api/refresh-token), or either
  // ("client_secret_any": Google desktop and TV clients have a secret that must be sent,
  // https://developers.google.com/identity/protocols/oauth2/native-app).
  client_auth: { default: 'none', valid: oneOf('none', 'client_secret_post', 'client_secret_basic', 'client_secret_any') },

  // ----- device flow (RFC 8628) -----------------------------------------------------------
  // false: no device_authorization_endpoint in discovery, no endpoint (Cognito, OneLogin,
  // JumpCloud; Okta has one for native apps: https://developer.okta.com/docs/guides/device-authorization-grant/main/).
  device_flow: { default: true, valid: bool },
  // Google names it verification_url (https://developers.google.com/identity/protocols/oauth2/limited-input-device).
  device_verification_url: { default: false, valid: bool },
  // false: no verification_uri_complete (Entra https://learn.microsoft.com/en-us/entra/identity-platform/v2-oauth2-device-code).
  device_uri_complete: { default: true, valid: bool },
  // The poll error when the user declined: Entra says authorization_declined, and
  // bad_verification_code for a device code it does not know
  // (https://learn.microsoft.com/en-us/entra/identity-platform/v2-oauth2-device-code).
  device_denied_error: { default: 'access_denied', valid: oneOf('access_denied', 'authorization_declined') },
  device_unknown_code_error: { default: 'invalid_grant', valid: oneOf('invalid_grant', 'bad_verification_code') },
  // `interval` in the device authorization response (null: none, clients use 5 s).
  device_interval: { default: null, valid: seconds },
  // Answer slow_down to a poll that comes sooner than the interval (5 s when none is sent)
  // after the previous one; each slow_down adds 5 s (RFC 8628 section 3.5).
  device_slow_down: { default: false, valid: bool },
  // expires_in / interval sent as JSON strings (device and token responses), as Entra's v1
  // endpoints did (unconfirmed for v2).
  numbers_as_strings: { default: false, valid: bool },

  // ----- revocation (RFC 7009) ------------------------------------------------------------
  // "enabled"; "absent" (not in discovery, no endpoint); "error" (answers 400
  // unsupported_token_type, e.g. Cognito with token revocation off, unconfirmed).
  revocation: { default: 'enabled', valid: oneOf('enabled', 'absent', 'error') },
};

// The effective switches: defaults overlaid with the JSON object in `text` (IDP_SWITCHES).
// Throws an Error naming the first unknown switch or bad value.
export function parseSwitches(text) {
  const given = text ? JSON.parse(text) : {};
  if (given === null || typeof given !== 'object' || Array.isArray(given)) {
    throw new Error('IDP_SWITCHES must be a JSON object');
  }
  const out = {};
  for (const [name, spec] of Object.entries(SWITCHES)) out[name] = spec.default;
  for (const [name, value] of Object.entries(given)) {
    const spec = SWITCHES[name];
    if (!spec) throw new Error(`unknown switch ${JSON.stringify(name)}`);
    if (!spec.valid(value)) throw new Error(`bad value for switch ${name}: ${JSON.stringify(value)}`);
    out[name] = value;
  }
  return out;
}
