//! Images on a user message (`images` of `POST /messages`): which are
//! accepted, checked before anything is stored. An image is a base64 `data:`
//! URL of a PNG, JPEG, GIF or WebP, or an `https://` URL the model's server
//! fetches (the gateway never does).
//!
//! Pure: touches nothing.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;

use crate::model::ClientError;

/// Most images on one message.
pub const MAX_IMAGES: usize = 4;
/// Largest image of a `data:` URL, decoded bytes.
pub const MAX_IMAGE_BYTES: usize = 1 << 20;
/// Longest `https://` URL, bytes.
pub const MAX_URL_BYTES: usize = 2048;
/// The media types a `data:` URL may carry.
pub const MEDIA_TYPES: [&str; 4] = ["image/png", "image/jpeg", "image/gif", "image/webp"];

/// Checks a message's images: at most [`MAX_IMAGES`], each a valid `data:` or
/// `https://` URL; else a 422 naming `images` or `images[i]`.
pub fn validate(images: &[String]) -> Result<(), ClientError> {
    if images.len() > MAX_IMAGES {
        return Err(ClientError::invalid(
            "images",
            format!("at most {MAX_IMAGES} images per message, got {}", images.len()),
        ));
    }
    for (i, url) in images.iter().enumerate() {
        check(url).map_err(|why| ClientError::invalid(&format!("images[{i}]"), why))?;
    }
    Ok(())
}

fn check(url: &str) -> Result<(), String> {
    if let Some(rest) = strip_scheme(url, "data:") {
        return check_data(rest);
    }
    if let Some(rest) = strip_scheme(url, "https://") {
        return check_https(url, rest);
    }
    Err("an image is a base64 `data:image/…` URL or an `https://` URL (no other scheme)".into())
}

/// `url` after `scheme`, which matches ignoring ASCII case.
fn strip_scheme<'a>(url: &'a str, scheme: &str) -> Option<&'a str> {
    let head = url.get(..scheme.len())?;
    head.eq_ignore_ascii_case(scheme).then(|| &url[scheme.len()..])
}

fn check_https(url: &str, rest: &str) -> Result<(), String> {
    if url.len() > MAX_URL_BYTES {
        return Err(format!("an image URL is at most {MAX_URL_BYTES} bytes"));
    }
    let host = rest.split(['/', '?', '#']).next().unwrap_or_default();
    if host.is_empty() || url.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err("not a valid https URL".into());
    }
    Ok(())
}

fn check_data(rest: &str) -> Result<(), String> {
    let Some((header, payload)) = rest.split_once(',') else {
        return Err("a data URL is `data:<type>;base64,<data>`".into());
    };
    let Some(media) = header.strip_suffix(";base64") else {
        return Err("a data URL must be base64 (`data:image/png;base64,…`)".into());
    };
    if !MEDIA_TYPES.iter().any(|t| t.eq_ignore_ascii_case(media)) {
        return Err(format!("`{media}` is not accepted: use {}", MEDIA_TYPES.join(", ")));
    }
    // Four characters per three bytes: refuse a long one before decoding it.
    if payload.len() > MAX_IMAGE_BYTES.div_ceil(3) * 4 {
        return Err(too_large());
    }
    let decoded = STANDARD.decode(payload).map_err(|_| "the data URL is not valid base64".to_owned())?;
    if decoded.is_empty() {
        return Err("the image is empty".into());
    }
    if decoded.len() > MAX_IMAGE_BYTES {
        return Err(too_large());
    }
    Ok(())
}

fn too_large() -> String {
    format!("an image is at most {MAX_IMAGE_BYTES} bytes (decoded)")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn png(bytes: usize) -> String {
        format!("data:image/png;base64,{}", STANDARD.encode(vec![7u8; bytes]))
    }

    fn param(images: &[String]) -> String {
        let e = validate(images).expect_err("refused");
        e.details.get("param").and_then(|p| p.as_str()).unwrap_or_default().to_owned()
    }

    #[test]
    fn data_urls_of_the_four_types_and_https_urls_are_accepted() {
        let images = vec![
            png(10),
            format!("data:image/JPEG;base64,{}", STANDARD.encode([1, 2, 3])),
            "https://example.com/cat.webp?x=1".to_owned(),
            "HTTPS://example.com/a.gif".to_owned(),
        ];
        assert!(validate(&images).is_ok());
        assert!(validate(&[png(MAX_IMAGE_BYTES)]).is_ok());
    }

    #[test]
    fn other_schemes_types_and_malformed_urls_name_the_image() {
        let ok = png(1);
        for bad in [
            "http://example.com/a.png",
            "file:///etc/passwd",
            "ftp://x/a.png",
            "data:image/svg+xml;base64,PHN2Zz4=",
            "data:text/plain;base64,aGk=",
            "data:image/png,raw",
            "data:image/png;base64,***",
            "data:image/png;base64,",
            "https://",
            "https://exa mple.com/a.png",
        ] {
            assert_eq!(param(&[ok.clone(), bad.to_owned()]), "images[1]", "{bad}");
        }
    }

    #[test]
    fn an_oversized_image_or_url_and_too_many_images_are_refused() {
        assert_eq!(param(&[png(MAX_IMAGE_BYTES + 1)]), "images[0]");
        let long = format!("https://example.com/{}", "a".repeat(MAX_URL_BYTES));
        assert_eq!(param(&[long]), "images[0]");
        assert_eq!(param(&vec![png(1); MAX_IMAGES + 1]), "images");
    }
}
