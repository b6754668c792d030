//! Query strings through serde: a route's parameters are one struct that derives
//! `Deserialize` (how they are read) and utoipa's `IntoParams` (how they are
//! documented), so the two cannot drift. A query string that does not fit is a 400
//! `invalid-parameter` problem whose `field` names the parameter.

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use serde::de::DeserializeOwned;
use stockroom_http::Problem;
use utoipa::IntoParams;
use utoipa::openapi::path::ParameterIn;

/// A query string read into `T`, with problem+json errors.
pub struct QueryParams<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned + IntoParams> FromRequestParts<S> for QueryParams<T> {
    type Rejection = Problem;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Problem> {
        parse(parts.uri.query().unwrap_or_default()).map(QueryParams)
    }
}

/// Reads a query string into `T`. Parameters `T` does not document are refused; a
/// parameter given twice counts once, the last time. A value that does not fit names
/// the parameter and what it must be: the parameter's own description, so write
/// those to read after "must be" (`a number from 1 to 100 (default 20)`).
pub fn parse<T: DeserializeOwned + IntoParams>(query: &str) -> Result<T, Problem> {
    let params = T::into_params(|| Some(ParameterIn::Query));
    let mut pairs: Vec<(String, String)> = Vec::new();
    for (key, value) in form_urlencoded::parse(query.as_bytes()) {
        if !params.iter().any(|p| p.name == key) {
            let known: Vec<&str> = params.iter().map(|p| p.name.as_str()).collect();
            let detail = format!("unknown parameter {key:?}; this route takes {}", known.join(", "));
            return Err(Problem::bad_parameter(&key, detail));
        }
        pairs.retain(|(k, _)| *k != key);
        pairs.push((key.into_owned(), value.into_owned()));
    }
    let query = form_urlencoded::Serializer::new(String::new()).extend_pairs(&pairs).finish();
    let de = serde_urlencoded::Deserializer::new(form_urlencoded::parse(query.as_bytes()));
    serde_path_to_error::deserialize(de).map_err(|e| {
        let name = match e.path().to_string() {
            path if path == "." => "query".to_owned(),
            path => path,
        };
        let expected = params.iter().find(|p| p.name == name).and_then(|p| p.description.as_deref());
        let detail = match expected {
            Some(what) => format!("{name} must be {what}: {}", e.inner()),
            None => format!("{name}: {}", e.inner()),
        };
        Problem::bad_parameter(&name, detail)
    })
}

#[cfg(test)]
mod tests {
    use serde::Deserialize;

    use super::*;

    #[derive(Debug, Deserialize, IntoParams, PartialEq)]
    #[into_params(parameter_in = Query)]
    struct Params {
        /// a number from 1 to 10
        limit: Option<u8>,
        /// true or false
        flag: Option<bool>,
        q: Option<String>,
    }

    fn refused(query: &str) -> serde_json::Value {
        serde_json::to_value(parse::<Params>(query).unwrap_err()).unwrap()
    }

    #[test]
    fn values_are_read_and_the_last_of_a_repeated_parameter_wins() {
        let p: Params = parse("limit=3&q=a%20b&limit=4").unwrap();
        assert_eq!(p, Params { limit: Some(4), flag: None, q: Some("a b".into()) });
        assert_eq!(parse::<Params>("").unwrap(), Params { limit: None, flag: None, q: None });
    }

    #[test]
    fn a_bad_value_names_the_parameter_and_what_it_must_be() {
        let p = refused("limit=lots");
        assert_eq!(p["field"], "limit");
        assert_eq!(p["status"], 400);
        assert_eq!(p["type"], "https://stockroom.dev/errors/invalid-parameter");
        assert!(p["detail"].as_str().unwrap().starts_with("limit must be a number from 1 to 10: "), "{p}");
        assert_eq!(refused("limit=999")["field"], "limit");
        assert_eq!(refused("flag=maybe")["field"], "flag");
    }

    #[test]
    fn an_unknown_parameter_is_named() {
        let p = refused("q=x&colour=red");
        assert_eq!(p["field"], "colour");
        assert!(p["detail"].as_str().unwrap().contains("limit, flag, q"), "{p}");
    }
}
