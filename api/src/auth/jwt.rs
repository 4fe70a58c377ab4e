//! Bearer tokens: HS256 JWTs carrying subject, role, environment, issuer,
//! audience, expiry, the account's token version and, for a token that
//! belongs to a server-side session, that session's id. Anything else —
//! another algorithm, `none`, a wrong audience, an expired or re-signed
//! token — is refused the same way.

use super::Role;
use entity::Environment;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};

pub const ISSUER: &str = "keysmith";
pub const AUDIENCE: &str = "keysmith-api";
pub const MIN_SECRET_BYTES: usize = 32;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claims {
    pub sub: String,
    pub role: Role,
    /// The only environment the token may act in; `None` for both.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub env: Option<Environment>,
    pub iss: String,
    pub aud: String,
    pub iat: u64,
    pub exp: u64,
    /// The account's token version when the token was issued (staff only).
    #[serde(default)]
    pub ver: i32,
    /// The session the token belongs to: a customer's portal session, or a
    /// staff member's sign-in session. A staff token without one is a bearer
    /// token for API clients.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sid: Option<String>,
}

pub struct JwtKeys {
    encoding: EncodingKey,
    decoding: DecodingKey,
    validation: Validation,
    /// The portal's CSRF key, derived from the same secret so that every
    /// node seals and opens the same tokens.
    portal_csrf: [u8; 32],
}

impl std::fmt::Debug for JwtKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("JwtKeys(..)")
    }
}

impl JwtKeys {
    pub fn new(secret: &[u8]) -> Result<Self, String> {
        if secret.len() < MIN_SECRET_BYTES {
            return Err(format!("the JWT secret must be at least {MIN_SECRET_BYTES} bytes (got {})", secret.len()));
        }
        let mut validation = Validation::new(Algorithm::HS256);
        validation.set_issuer(&[ISSUER]);
        validation.set_audience(&[AUDIENCE]);
        validation.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
        // A token is not good before its `nbf` (RFC 7519 §4.1.5) when it carries one.
        validation.validate_nbf = true;
        validation.leeway = 5;
        let portal_csrf = {
            use hmac::Mac;
            let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(secret).map_err(|e| e.to_string())?;
            mac.update(b"keysmith portal csrf key");
            mac.finalize().into_bytes().into()
        };
        Ok(Self {
            encoding: EncodingKey::from_secret(secret),
            decoding: DecodingKey::from_secret(secret),
            validation,
            portal_csrf,
        })
    }

    /// The key the portal's CSRF tokens are sealed with.
    pub fn portal_csrf_key(&self) -> [u8; 32] {
        self.portal_csrf
    }

    /// Signs a token for `sub` valid for `ttl_seconds` from now.
    pub fn issue(
        &self,
        sub: &str,
        role: Role,
        env: Option<Environment>,
        ver: i32,
        ttl_seconds: u64,
    ) -> Result<(String, Claims), String> {
        self.mint(sub, role, env, ver, None, ttl_seconds)
    }

    /// Signs a token for `sub` that lives as long as the session `sid`.
    pub fn issue_session(
        &self,
        sub: &str,
        role: Role,
        env: Option<Environment>,
        sid: &str,
        ttl_seconds: u64,
    ) -> Result<(String, Claims), String> {
        self.mint(sub, role, env, 0, Some(sid), ttl_seconds)
    }

    /// Signs a staff account's token that lives as long as its staff session
    /// `sid` and, like any staff token, as long as the account's token version `ver`.
    pub fn issue_staff_session(
        &self,
        sub: &str,
        role: Role,
        ver: i32,
        sid: &str,
        ttl_seconds: u64,
    ) -> Result<(String, Claims), String> {
        self.mint(sub, role, None, ver, Some(sid), ttl_seconds)
    }

    fn mint(
        &self,
        sub: &str,
        role: Role,
        env: Option<Environment>,
        ver: i32,
        sid: Option<&str>,
        ttl_seconds: u64,
    ) -> Result<(String, Claims), String> {
        let now = jsonwebtoken::get_current_timestamp();
        let claims = Claims {
            sub: sub.to_string(),
            role,
            env,
            iss: ISSUER.into(),
            aud: AUDIENCE.into(),
            iat: now,
            exp: now + ttl_seconds,
            ver,
            sid: sid.map(str::to_string),
        };
        self.sign(&claims).map(|token| (token, claims))
    }

    pub fn sign(&self, claims: &Claims) -> Result<String, String> {
        jsonwebtoken::encode(&Header::new(Algorithm::HS256), claims, &self.encoding)
            .map_err(|e| format!("signing a token: {e}"))
    }

    /// The claims of a valid token, or a short reason it is not one.
    pub fn verify(&self, token: &str) -> Result<Claims, String> {
        jsonwebtoken::decode::<Claims>(token, &self.decoding, &self.validation).map(|data| data.claims).map_err(|e| {
            match e.kind() {
                jsonwebtoken::errors::ErrorKind::ExpiredSignature => "the token has expired".to_string(),
                jsonwebtoken::errors::ErrorKind::ImmatureSignature => "the token is not valid yet".to_string(),
                jsonwebtoken::errors::ErrorKind::InvalidAudience => "the token is for another audience".to_string(),
                jsonwebtoken::errors::ErrorKind::InvalidIssuer => "the token is from another issuer".to_string(),
                _ => "the token is not valid".to_string(),
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::Engine;
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;

    fn keys() -> JwtKeys {
        JwtKeys::new(&[7u8; 32]).unwrap()
    }

    #[test]
    fn short_secrets_are_refused() {
        assert!(JwtKeys::new(&[1u8; 31]).unwrap_err().contains("at least 32"));
    }

    #[test]
    fn a_token_round_trips() {
        let (token, claims) = keys().issue("u1", Role::Manager, None, 3, 60).unwrap();
        assert_eq!(keys().verify(&token).unwrap(), claims);
    }

    #[test]
    fn a_staff_session_token_carries_its_session_and_version() {
        let (token, claims) = keys().issue_staff_session("u1", Role::Support, 4, "s1", 60).unwrap();
        assert_eq!((claims.sid.as_deref(), claims.ver, claims.env), (Some("s1"), 4, None));
        assert_eq!(keys().verify(&token).unwrap(), claims);
    }

    #[test]
    fn expired_wrong_audience_resigned_and_none_tokens_are_refused() {
        let k = keys();
        let (_, mut claims) = k.issue("u1", Role::Admin, None, 0, 60).unwrap();

        let mut expired = claims.clone();
        expired.exp = expired.iat - 3600;
        assert_eq!(k.verify(&k.sign(&expired).unwrap()).unwrap_err(), "the token has expired");

        claims.aud = "someone-else".into();
        assert!(k.verify(&k.sign(&claims).unwrap()).is_err());
        claims.aud = AUDIENCE.into();

        let other = JwtKeys::new(&[8u8; 32]).unwrap();
        assert!(k.verify(&other.sign(&claims).unwrap()).is_err());

        let body = URL_SAFE_NO_PAD.encode(serde_json::to_vec(&claims).unwrap());
        let none = format!("{}.{body}.", URL_SAFE_NO_PAD.encode(br#"{"alg":"none","typ":"JWT"}"#));
        assert!(k.verify(&none).is_err());

        let hs512 =
            jsonwebtoken::encode(&Header::new(Algorithm::HS512), &claims, &EncodingKey::from_secret(&[7u8; 32]))
                .unwrap();
        assert!(k.verify(&hs512).is_err());
    }

    #[test]
    fn tokens_not_valid_before_a_future_time_are_refused() {
        let k = keys();
        let (_, claims) = k.issue("u1", Role::Admin, None, 0, 600).unwrap();
        let with_nbf = |nbf: u64| {
            let mut value = serde_json::to_value(&claims).unwrap();
            value["nbf"] = serde_json::json!(nbf);
            jsonwebtoken::encode(&Header::new(Algorithm::HS256), &value, &EncodingKey::from_secret(&[7u8; 32])).unwrap()
        };
        assert_eq!(k.verify(&with_nbf(claims.iat + 300)).unwrap_err(), "the token is not valid yet");
        assert_eq!(k.verify(&with_nbf(claims.iat)).unwrap(), claims);
    }
}
