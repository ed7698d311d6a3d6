//! A fake of the few GitHub REST endpoints Magos uses, served on 127.0.0.1.
//!
//! It is a fake because GitHub's API cannot be reached from the test machines
//! (no route to the internet). It checks what matters about the real API: App
//! requests carry a JWT signed with RS256 by the App's private key (verified
//! here with the App's public key, issuer = the App id, unexpired), installation
//! requests carry a token this fake minted, and pull requests are kept as GitHub
//! keeps them (numbered, one list, open or closed).

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use http_body_util::{BodyExt, Full};
use hyper::body::{Bytes, Incoming};
use hyper::{Method, Request, Response, StatusCode};
use serde_json::{Value, json};

/// A pull request as the fake holds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pull {
    pub number: u64,
    pub head: String,
    pub base: String,
    pub title: String,
    pub body: String,
    pub open: bool,
}

#[derive(Debug, Default)]
pub struct State {
    /// Tokens minted so far (the last one is current; all stay valid).
    pub tokens: Vec<String>,
    /// Installation look-ups.
    pub lookups: usize,
    /// Requests refused for a bad JWT or token.
    pub refused: Vec<String>,
    pub pulls: Vec<Pull>,
}

pub struct FakeGithub {
    pub addr: SocketAddr,
    pub state: Arc<Mutex<State>>,
}

struct Settings {
    app_id: u64,
    installation_id: u64,
    owner: String,
    repo: String,
    public_key: jsonwebtoken::DecodingKey,
    /// The token to mint (then suffixed with a counter after the first).
    token: String,
    /// Lifetime given to minted tokens, in seconds.
    token_lifetime: i64,
    state: Arc<Mutex<State>>,
}

impl FakeGithub {
    pub fn start(
        app_id: u64,
        installation_id: u64,
        owner: &str,
        repo: &str,
        public_key_pem: &[u8],
        token: &str,
        token_lifetime: i64,
    ) -> Self {
        let state = Arc::new(Mutex::new(State::default()));
        let settings = Arc::new(Settings {
            app_id,
            installation_id,
            owner: owner.to_owned(),
            repo: repo.to_owned(),
            public_key: jsonwebtoken::DecodingKey::from_rsa_pem(public_key_pem).unwrap(),
            token: token.to_owned(),
            token_lifetime,
            state: state.clone(),
        });
        let addr = super::local_http::serve(move |req| {
            let settings = settings.clone();
            async move { handle(&settings, req).await }
        });
        Self { addr, state }
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }
}

fn reply(status: StatusCode, body: Value) -> Response<Full<Bytes>> {
    Response::builder()
        .status(status)
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from(body.to_string())))
        .unwrap()
}

fn refuse(s: &Settings, why: String) -> Response<Full<Bytes>> {
    s.state.lock().unwrap().refused.push(why.clone());
    reply(
        StatusCode::UNAUTHORIZED,
        json!({ "message": why, "documentation_url": "https://docs.github.com/rest" }),
    )
}

fn pull_json(p: &Pull) -> Value {
    json!({
        "number": p.number,
        "state": if p.open { "open" } else { "closed" },
        "title": p.title,
        "body": p.body,
        "head": { "ref": p.head },
        "base": { "ref": p.base },
    })
}

/// The JWT is RS256, signed by the App's key, issued by the App, unexpired.
fn check_jwt(s: &Settings, auth: &str) -> Result<(), String> {
    let jwt = auth
        .strip_prefix("Bearer ")
        .ok_or("no bearer token".to_owned())?;
    let mut validation = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::RS256);
    // `iss` is checked below: GitHub takes the App id as a number, which the
    // library's own issuer check (strings only) would call missing.
    validation.set_required_spec_claims(&["exp"]);
    let data = jsonwebtoken::decode::<Value>(jwt, &s.public_key, &validation)
        .map_err(|e| format!("bad JWT: {e}"))?;
    let iss = &data.claims["iss"];
    if iss != &json!(s.app_id) && iss != &json!(s.app_id.to_string()) {
        return Err(format!("JWT issued by {iss}"));
    }
    if !data.claims["iat"].is_u64() {
        return Err("JWT without iat".to_owned());
    }
    Ok(())
}

async fn handle(s: &Settings, req: Request<Incoming>) -> Response<Full<Bytes>> {
    let method = req.method().clone();
    let path = req.uri().path().to_owned();
    let query = req.uri().query().unwrap_or("").to_owned();
    let auth = req
        .headers()
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_owned();
    let body = req.into_body().collect().await.unwrap().to_bytes();
    let body: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let repo_path = format!("/repos/{}/{}", s.owner, s.repo);

    // App endpoints: JWT.
    if path == format!("{repo_path}/installation") && method == Method::GET {
        if let Err(why) = check_jwt(s, &auth) {
            return refuse(s, why);
        }
        s.state.lock().unwrap().lookups += 1;
        return reply(
            StatusCode::OK,
            json!({ "id": s.installation_id, "app_id": s.app_id }),
        );
    }
    if path == format!("/app/installations/{}/access_tokens", s.installation_id)
        && method == Method::POST
    {
        if let Err(why) = check_jwt(s, &auth) {
            return refuse(s, why);
        }
        let mut state = s.state.lock().unwrap();
        let token = if state.tokens.is_empty() {
            s.token.clone()
        } else {
            format!("{}_{}", s.token, state.tokens.len())
        };
        state.tokens.push(token.clone());
        let expires = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs() as i64
            + s.token_lifetime;
        return reply(
            StatusCode::CREATED,
            json!({ "token": token, "expires_at": rfc3339(expires), "permissions": {} }),
        );
    }

    // Installation endpoints: a minted token.
    let token = auth
        .strip_prefix("Bearer ")
        .or_else(|| auth.strip_prefix("token "))
        .unwrap_or("");
    if !s.state.lock().unwrap().tokens.iter().any(|t| t == token) {
        return refuse(s, format!("unknown token on {method} {path}"));
    }
    let mut state = s.state.lock().unwrap();
    if path == format!("{repo_path}/pulls") && method == Method::GET {
        let head = query
            .split('&')
            .find_map(|kv| kv.strip_prefix("head="))
            .map(|h| h.replace("%3A", ":"));
        let open_only = query.split('&').any(|kv| kv == "state=open");
        let list: Vec<Value> = state
            .pulls
            .iter()
            .filter(|p| !open_only || p.open)
            .filter(|p| {
                head.as_deref()
                    .is_none_or(|h| h == format!("{}:{}", s.owner, p.head))
            })
            .map(pull_json)
            .collect();
        return reply(StatusCode::OK, Value::Array(list));
    }
    if path == format!("{repo_path}/pulls") && method == Method::POST {
        let head = body["head"].as_str().unwrap_or("").to_owned();
        if state.pulls.iter().any(|p| p.open && p.head == head) {
            return reply(
                StatusCode::UNPROCESSABLE_ENTITY,
                json!({ "message": "Validation Failed", "errors": [{ "message": format!("A pull request already exists for {}:{head}.", s.owner) }] }),
            );
        }
        let pull = Pull {
            number: state.pulls.len() as u64 + 1,
            head,
            base: body["base"].as_str().unwrap_or("").to_owned(),
            title: body["title"].as_str().unwrap_or("").to_owned(),
            body: body["body"].as_str().unwrap_or("").to_owned(),
            open: true,
        };
        let json = pull_json(&pull);
        state.pulls.push(pull);
        return reply(StatusCode::CREATED, json);
    }
    if let Some(number) = path
        .strip_prefix(&format!("{repo_path}/pulls/"))
        .and_then(|n| n.parse::<u64>().ok())
        && method == Method::PATCH
    {
        let Some(pull) = state.pulls.iter_mut().find(|p| p.number == number) else {
            return reply(StatusCode::NOT_FOUND, json!({ "message": "Not Found" }));
        };
        if let Some(t) = body["title"].as_str() {
            pull.title = t.to_owned();
        }
        if let Some(b) = body["body"].as_str() {
            pull.body = b.to_owned();
        }
        if body["state"] == "closed" {
            pull.open = false;
        }
        return reply(StatusCode::OK, pull_json(pull));
    }
    reply(StatusCode::NOT_FOUND, json!({ "message": "Not Found" }))
}

/// Unix seconds as `YYYY-MM-DDTHH:MM:SSZ`.
fn rfc3339(secs: i64) -> String {
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    // Civil date from days (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem / 60 % 60,
        rem % 60
    )
}
