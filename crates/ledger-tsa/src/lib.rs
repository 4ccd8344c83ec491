//! RFC 3161 trusted timestamps: builds a `TimeStampReq`, reads a `TimeStampResp`, and verifies a
//! `TimeStampToken` (RFC 5652 CMS SignedData over a `TSTInfo`) against a message imprint and a set
//! of root certificates supplied by the relying party.
//!
//! What [`verify_token`] checks, in order:
//! 1. the token is a CMS SignedData whose encapsulated content type is `id-ct-TSTInfo` and whose
//!    `TSTInfo.messageImprint` is SHA-256 of the caller's bytes (RFC 3161 §2.4.2);
//! 2. exactly one SignerInfo, with signed attributes: `content-type` = `id-ct-TSTInfo`,
//!    `message-digest` = the digest of the encapsulated TSTInfo (RFC 5652 §5.4, §11.1–11.2);
//! 3. the RSA PKCS#1 v1.5 signature over the DER `SET OF` encoding of the signed attributes, by
//!    the certificate the SignerIdentifier names (RFC 5652 §5.4, §5.6);
//! 4. a `signing-certificate-v2` (ESSCertIDv2, RFC 5816) or `signing-certificate` (ESSCertID,
//!    RFC 2634) attribute whose first certificate hash equals the hash of the signer certificate
//!    (RFC 3161 §2.4.1);
//! 5. the signer certificate carries the extended key usage `id-kp-timeStamping`, marked critical
//!    (RFC 3161 §2.3);
//! 6. a chain from the signer certificate through certificates carried in the token up to one of
//!    the supplied roots, every signature RSA PKCS#1 v1.5 with SHA-256/384/512, every issuer a CA
//!    (basicConstraints cA), and every certificate valid at `genTime` (RFC 5280 §6.1, with the
//!    validity instant the token's own time, as for archived evidence).
//!
//! Revocation (CRL/OCSP) is not checked: the verifier works offline.

use const_oid::ObjectIdentifier;
use der::asn1::{Any, Int, OctetString, SetOfVec};
use der::{Decode, Encode, Sequence, Tagged as _};
use sha2::Digest;
use spki::AlgorithmIdentifierOwned;
use x509_cert::Certificate;

pub use x509_cert::Certificate as X509Certificate;

/// `id-ct-TSTInfo` (RFC 3161 §2.4.2).
pub const ID_CT_TSTINFO: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.9.16.1.4");
const ID_SIGNED_DATA: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.7.2");
const ID_CONTENT_TYPE: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.9.3");
const ID_MESSAGE_DIGEST: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.9.4");
const ID_SIGNING_CERT: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.9.16.2.12");
const ID_SIGNING_CERT_V2: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.9.16.2.47");
const ID_KP_TIMESTAMPING: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.6.1.5.5.7.3.8");
const ID_EXT_KEY_USAGE: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.5.29.37");
const ID_SHA1: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.14.3.2.26");
const ID_SHA256: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.16.840.1.101.3.4.2.1");
const ID_SHA384: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.16.840.1.101.3.4.2.2");
const ID_SHA512: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.16.840.1.101.3.4.2.3");
const ID_RSA: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.1.1");
const ID_RSA_SHA256: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.1.11");
const ID_RSA_SHA384: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.1.12");
const ID_RSA_SHA512: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.1.13");

/// Largest token or response accepted.
pub const MAX_TOKEN_BYTES: usize = 64 << 10;
/// Longest certificate chain followed (signer certificate included).
const MAX_CHAIN: usize = 6;

/// Why a response or token was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TsaError {
    /// Bytes that are not the expected DER structure.
    #[error("malformed {0}")]
    Malformed(String),
    /// The TSA answered with a status other than granted.
    #[error("the TSA refused the request: status {status}{text}")]
    Refused {
        /// PKIStatus.
        status: u8,
        /// statusString, when given (with a leading ": ").
        text: String,
    },
    /// The token's imprint is not the hash of the expected bytes.
    #[error("TSA_WRONG_IMPRINT: the token timestamps other data (imprint {found}, expected {expected})")]
    WrongImprint {
        /// Hex imprint in the token.
        found: String,
        /// Hex SHA-256 expected.
        expected: String,
    },
    /// A digest or signature does not verify.
    #[error("TSA_BAD_SIGNATURE: {0}")]
    BadSignature(String),
    /// The signing-certificate attribute does not bind the signer certificate.
    #[error("TSA_CERT_BINDING: {0}")]
    CertBinding(String),
    /// The signer certificate may not issue timestamps.
    #[error("TSA_NOT_TIMESTAMPING: {0}")]
    NotTimestamping(String),
    /// No chain to a supplied root.
    #[error("TSA_UNTRUSTED: {0}")]
    Untrusted(String),
    /// A certificate on the chain was not valid at genTime.
    #[error("TSA_CERT_EXPIRED: {0}")]
    CertNotValid(String),
    /// An algorithm this verifier does not implement.
    #[error("TSA_UNSUPPORTED: {0}")]
    Unsupported(String),
}

fn malformed(what: &str, e: impl std::fmt::Display) -> TsaError {
    TsaError::Malformed(format!("{what}: {e}"))
}

/// RFC 3161 `MessageImprint`.
#[derive(Clone, Debug, Eq, PartialEq, Sequence)]
pub struct MessageImprint {
    /// Hash algorithm.
    pub hash_algorithm: AlgorithmIdentifierOwned,
    /// The hash.
    pub hashed_message: OctetString,
}

/// RFC 3161 `TimeStampReq` (no policy, no extensions).
#[derive(Clone, Debug, Eq, PartialEq, Sequence)]
struct TimeStampReq {
    version: u8,
    message_imprint: MessageImprint,
    #[asn1(optional = "true")]
    req_policy: Option<ObjectIdentifier>,
    #[asn1(optional = "true")]
    nonce: Option<Int>,
    cert_req: bool,
}

/// RFC 3161 `PKIStatusInfo`.
#[derive(Clone, Debug, Eq, PartialEq, Sequence)]
struct PkiStatusInfo {
    status: u8,
    #[asn1(optional = "true")]
    status_string: Option<Vec<String>>,
    #[asn1(optional = "true")]
    fail_info: Option<der::asn1::BitString>,
}

/// RFC 3161 `TimeStampResp`.
#[derive(Clone, Debug, Eq, PartialEq, Sequence)]
struct TimeStampResp {
    status: Any,
    #[asn1(optional = "true")]
    time_stamp_token: Option<Any>,
}

/// RFC 3161 `TSTInfo`.
#[derive(Clone, Debug, Eq, PartialEq, Sequence)]
struct TstInfo {
    version: u8,
    policy: ObjectIdentifier,
    message_imprint: MessageImprint,
    serial_number: Int,
    gen_time: Any,
    #[asn1(optional = "true")]
    accuracy: Option<Any>,
    #[asn1(default = "Default::default")]
    ordering: bool,
    #[asn1(optional = "true")]
    nonce: Option<Int>,
    #[asn1(context_specific = "0", optional = "true", tag_mode = "EXPLICIT")]
    tsa: Option<Any>,
    #[asn1(context_specific = "1", optional = "true", tag_mode = "IMPLICIT")]
    extensions: Option<x509_cert::ext::Extensions>,
}

/// ESSCertIDv2 (RFC 5816): hash algorithm DEFAULT sha256.
#[derive(Clone, Debug, Eq, PartialEq, Sequence)]
struct EssCertIdV2 {
    #[asn1(optional = "true")]
    hash_algorithm: Option<AlgorithmIdentifierOwned>,
    cert_hash: OctetString,
    #[asn1(optional = "true")]
    issuer_serial: Option<Any>,
}

/// SigningCertificateV2 (RFC 5816).
#[derive(Clone, Debug, Eq, PartialEq, Sequence)]
struct SigningCertificateV2 {
    certs: Vec<EssCertIdV2>,
    #[asn1(optional = "true")]
    policies: Option<Any>,
}

/// ESSCertID (RFC 2634): SHA-1 of the certificate.
#[derive(Clone, Debug, Eq, PartialEq, Sequence)]
struct EssCertId {
    cert_hash: OctetString,
    #[asn1(optional = "true")]
    issuer_serial: Option<Any>,
}

/// SigningCertificate (RFC 2634).
#[derive(Clone, Debug, Eq, PartialEq, Sequence)]
struct SigningCertificate {
    certs: Vec<EssCertId>,
    #[asn1(optional = "true")]
    policies: Option<Any>,
}

/// Parameters absent or NULL, the only forms RFC 5754 and RFC 8017 allow for these algorithms.
fn null_params(a: &AlgorithmIdentifierOwned) -> bool {
    a.parameters
        .as_ref()
        .is_none_or(|p| p.tag() == der::Tag::Null && p.value().is_empty())
}

fn sha256_alg() -> AlgorithmIdentifierOwned {
    AlgorithmIdentifierOwned {
        oid: ID_SHA256,
        parameters: None,
    }
}

/// Builds a DER `TimeStampReq` for SHA-256 `imprint`, asking for the TSA certificate in the
/// token (`certReq` TRUE) and carrying `nonce` (big-endian, leading zeros allowed).
///
/// # Errors
/// Only when DER encoding fails (not expected).
pub fn request(imprint: &[u8; 32], nonce: &[u8]) -> Result<Vec<u8>, TsaError> {
    let mut n = nonce.iter().skip_while(|b| **b == 0).copied().collect::<Vec<u8>>();
    if n.first().is_some_and(|b| b & 0x80 != 0) {
        n.insert(0, 0);
    }
    if n.is_empty() {
        n.push(0);
    }
    let req = TimeStampReq {
        version: 1,
        message_imprint: MessageImprint {
            hash_algorithm: sha256_alg(),
            hashed_message: OctetString::new(imprint.to_vec()).map_err(|e| malformed("imprint", e))?,
        },
        req_policy: None,
        nonce: Some(Int::new(&n).map_err(|e| malformed("nonce", e))?),
        cert_req: true,
    };
    req.to_der().map_err(|e| malformed("request", e))
}

/// Reads a DER `TimeStampResp` and returns the token (a DER `ContentInfo`) when the status is
/// granted (0) or grantedWithMods (1).
///
/// # Errors
/// A refused status, a granted status without a token, or bytes that are not a response.
pub fn token_from_response(resp: &[u8]) -> Result<Vec<u8>, TsaError> {
    if resp.len() > MAX_TOKEN_BYTES {
        return Err(TsaError::Malformed(format!("response of {} bytes", resp.len())));
    }
    let r = TimeStampResp::from_der(resp).map_err(|e| malformed("TimeStampResp", e))?;
    let status_der = r.status.to_der().map_err(|e| malformed("PKIStatusInfo", e))?;
    let si = PkiStatusInfo::from_der(&status_der).map_err(|e| malformed("PKIStatusInfo", e))?;
    if si.status > 1 {
        let text = si
            .status_string
            .map(|v| v.iter().map(String::as_str).collect::<Vec<_>>().join("; "))
            .map(|t| format!(": {t}"))
            .unwrap_or_default();
        return Err(TsaError::Refused {
            status: si.status,
            text,
        });
    }
    let token = r
        .time_stamp_token
        .ok_or_else(|| TsaError::Malformed("granted response without a token".into()))?;
    token.to_der().map_err(|e| malformed("token", e))
}

/// What a verified token says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verified {
    /// `genTime`, seconds since the Unix epoch (fraction dropped).
    pub gen_time_unix: u64,
    /// `genTime` as written in the token (GeneralizedTime text, UTC).
    pub gen_time: String,
    /// The TSA: the signer certificate's subject (RFC 4514 text).
    pub tsa_name: String,
    /// The root the chain ends at (subject text).
    pub root_name: String,
    /// TSA policy OID.
    pub policy: String,
    /// Serial number of the token, hex.
    pub serial: String,
}

/// Facts read from a token without checking it (for reports of unverified tokens).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unverified {
    /// `genTime` as written.
    pub gen_time: String,
    /// SHA-256 imprint in the token, when the imprint algorithm is SHA-256.
    pub imprint: Vec<u8>,
    /// Subject of the first certificate carried, when any.
    pub tsa_name: String,
    /// The nonce (big-endian, minimal), when the token has one.
    pub nonce: Option<Vec<u8>>,
}

struct Parsed {
    sd: cms::signed_data::SignedData,
    tst_der: Vec<u8>,
    tst: TstInfo,
    certs: Vec<Certificate>,
}

fn parse(token: &[u8]) -> Result<Parsed, TsaError> {
    if token.len() > MAX_TOKEN_BYTES {
        return Err(TsaError::Malformed(format!("token of {} bytes", token.len())));
    }
    let ci = cms::content_info::ContentInfo::from_der(token).map_err(|e| malformed("token ContentInfo", e))?;
    if ci.content_type != ID_SIGNED_DATA {
        return Err(TsaError::Malformed(format!(
            "token content type {} is not SignedData",
            ci.content_type
        )));
    }
    let sd: cms::signed_data::SignedData = ci.content.decode_as().map_err(|e| malformed("SignedData", e))?;
    if sd.version != cms::content_info::CmsVersion::V3 {
        return Err(TsaError::Malformed(
            "SignedData version is not 3 (RFC 5652 §5.1)".into(),
        ));
    }
    if sd.encap_content_info.econtent_type != ID_CT_TSTINFO {
        return Err(TsaError::Malformed(format!(
            "encapsulated content type {} is not id-ct-TSTInfo",
            sd.encap_content_info.econtent_type
        )));
    }
    let econtent = sd
        .encap_content_info
        .econtent
        .as_ref()
        .ok_or_else(|| TsaError::Malformed("SignedData without the TSTInfo".into()))?;
    let octets: OctetString = econtent.decode_as().map_err(|e| malformed("eContent", e))?;
    let tst_der = octets.as_bytes().to_vec();
    let tst = TstInfo::from_der(&tst_der).map_err(|e| malformed("TSTInfo", e))?;
    let certs = sd
        .certificates
        .as_ref()
        .map(|cs| {
            cs.0.iter()
                .filter_map(|c| match c {
                    cms::cert::CertificateChoices::Certificate(c) => Some(c.clone()),
                    cms::cert::CertificateChoices::Other(_) => None,
                })
                .collect()
        })
        .unwrap_or_default();
    Ok(Parsed {
        sd,
        tst_der,
        tst,
        certs,
    })
}

/// Reads a token's time, imprint and first certificate without verifying anything.
///
/// # Errors
/// When the bytes are not a timestamp token.
pub fn inspect(token: &[u8]) -> Result<Unverified, TsaError> {
    let p = parse(token)?;
    let (gen_time, _) = gen_time(&p.tst.gen_time)?;
    Ok(Unverified {
        gen_time,
        imprint: p.tst.message_imprint.hashed_message.as_bytes().to_vec(),
        tsa_name: p
            .certs
            .first()
            .map(|c| c.tbs_certificate().subject().to_string())
            .unwrap_or_default(),
        nonce: p
            .tst
            .nonce
            .map(|n| n.as_bytes().iter().skip_while(|b| **b == 0).copied().collect()),
    })
}

/// Parses a GeneralizedTime `YYYYMMDDHHMMSS[.f+]Z` into its text and Unix seconds.
fn gen_time(any: &Any) -> Result<(String, u64), TsaError> {
    if any.tag() != der::Tag::GeneralizedTime {
        return Err(TsaError::Malformed("genTime is not a GeneralizedTime".into()));
    }
    let s = std::str::from_utf8(any.value()).map_err(|e| malformed("genTime", e))?;
    let bad = || TsaError::Malformed(format!("genTime {s:?}"));
    let body = s.strip_suffix('Z').ok_or_else(bad)?;
    let (whole, frac) = body.split_once('.').unwrap_or((body, ""));
    if whole.len() != 14 || !whole.bytes().all(|b| b.is_ascii_digit()) || !frac.bytes().all(|b| b.is_ascii_digit()) {
        return Err(bad());
    }
    let num = |a: usize, b: usize| whole[a..b].parse::<u32>().map_err(|_| bad());
    let (y, mo, d, h, mi, se) = (
        num(0, 4)?,
        num(4, 6)?,
        num(6, 8)?,
        num(8, 10)?,
        num(10, 12)?,
        num(12, 14)?,
    );
    let dt = der::DateTime::new(y as u16, mo as u8, d as u8, h as u8, mi as u8, se as u8).map_err(|_| bad())?;
    Ok((s.to_string(), dt.unix_duration().as_secs()))
}

fn digest(alg: &ObjectIdentifier, data: &[u8]) -> Result<Vec<u8>, TsaError> {
    Ok(match *alg {
        ID_SHA256 => sha2::Sha256::digest(data).to_vec(),
        ID_SHA384 => sha2::Sha384::digest(data).to_vec(),
        ID_SHA512 => sha2::Sha512::digest(data).to_vec(),
        ID_SHA1 => sha1::Sha1::digest(data).to_vec(),
        o => return Err(TsaError::Unsupported(format!("digest algorithm {o}"))),
    })
}

/// RSA PKCS#1 v1.5 verification of `sig` over `data` with digest `dig` by `spki`.
fn rsa_verify(
    spki: &spki::SubjectPublicKeyInfoOwned,
    dig: &ObjectIdentifier,
    data: &[u8],
    sig: &[u8],
) -> Result<(), TsaError> {
    use rsa::pkcs8::DecodePublicKey as _;
    if spki.algorithm.oid != ID_RSA {
        return Err(TsaError::Unsupported(format!(
            "public key algorithm {} (RSA only)",
            spki.algorithm.oid
        )));
    }
    let der = spki.to_der().map_err(|e| malformed("public key", e))?;
    let key = rsa::RsaPublicKey::from_public_key_der(&der).map_err(|e| malformed("RSA public key", e))?;
    let hashed = digest(dig, data)?;
    let scheme = match *dig {
        ID_SHA256 => rsa::Pkcs1v15Sign::new::<sha2::Sha256>(),
        ID_SHA384 => rsa::Pkcs1v15Sign::new::<sha2::Sha384>(),
        ID_SHA512 => rsa::Pkcs1v15Sign::new::<sha2::Sha512>(),
        o => return Err(TsaError::Unsupported(format!("signature digest {o}"))),
    };
    key.verify(scheme, &hashed, sig)
        .map_err(|_| TsaError::BadSignature("the RSA signature does not verify".into()))
}

/// The digest of a certificate signature algorithm (sha*WithRSAEncryption).
fn cert_sig_digest(alg: &AlgorithmIdentifierOwned) -> Result<ObjectIdentifier, TsaError> {
    Ok(match alg.oid {
        ID_RSA_SHA256 => ID_SHA256,
        ID_RSA_SHA384 => ID_SHA384,
        ID_RSA_SHA512 => ID_SHA512,
        o => return Err(TsaError::Unsupported(format!("certificate signature algorithm {o}"))),
    })
}

/// Whether `issuer` signed `cert`.
fn issued_by(cert: &Certificate, issuer: &Certificate) -> bool {
    if cert.tbs_certificate().issuer() != issuer.tbs_certificate().subject() {
        return false;
    }
    let Ok(dig) = cert_sig_digest(cert.signature_algorithm()) else {
        return false;
    };
    let Ok(tbs) = cert.tbs_certificate().to_der() else {
        return false;
    };
    let Some(sig) = cert.signature().as_bytes() else {
        return false;
    };
    rsa_verify(issuer.tbs_certificate().subject_public_key_info(), &dig, &tbs, sig).is_ok()
}

fn valid_at(cert: &Certificate, t: u64) -> Result<(), TsaError> {
    let v = cert.tbs_certificate().validity();
    let nb = v.not_before.to_unix_duration().as_secs();
    let na = v.not_after.to_unix_duration().as_secs();
    if t < nb || t > na {
        return Err(TsaError::CertNotValid(format!(
            "certificate {} is valid from {} to {}, not at the token's genTime",
            cert.tbs_certificate().subject(),
            v.not_before,
            v.not_after
        )));
    }
    Ok(())
}

fn is_ca(cert: &Certificate) -> bool {
    matches!(
        cert.tbs_certificate()
            .get_extension::<x509_cert::ext::pkix::BasicConstraints>(),
        Ok(Some((_, bc))) if bc.ca
    )
}

fn signer_matches(sid: &cms::signed_data::SignerIdentifier, cert: &Certificate) -> bool {
    match sid {
        cms::signed_data::SignerIdentifier::IssuerAndSerialNumber(isn) => {
            cert.tbs_certificate().issuer() == &isn.issuer
                && cert.tbs_certificate().serial_number() == &isn.serial_number
        }
        cms::signed_data::SignerIdentifier::SubjectKeyIdentifier(ski) => matches!(
            cert.tbs_certificate()
                .get_extension::<x509_cert::ext::pkix::SubjectKeyIdentifier>(),
            Ok(Some((_, s))) if s == *ski
        ),
    }
}

fn single_attr(attrs: &x509_cert::attr::Attributes, oid: ObjectIdentifier) -> Option<&Any> {
    let a = attrs.iter().find(|a| a.oid == oid)?;
    if a.values.len() != 1 {
        return None;
    }
    a.values.iter().next()
}

/// Checks the ESSCertID(v2) attribute against the signer certificate.
fn check_binding(attrs: &x509_cert::attr::Attributes, signer: &Certificate) -> Result<(), TsaError> {
    let cert_der = signer.to_der().map_err(|e| malformed("signer certificate", e))?;
    if let Some(v) = single_attr(attrs, ID_SIGNING_CERT_V2) {
        let sc: SigningCertificateV2 = v.decode_as().map_err(|e| malformed("signing-certificate-v2", e))?;
        let first = sc
            .certs
            .first()
            .ok_or_else(|| TsaError::CertBinding("signing-certificate-v2 names no certificate".into()))?;
        let alg = first.hash_algorithm.as_ref().map_or(ID_SHA256, |a| a.oid);
        if digest(&alg, &cert_der)? != first.cert_hash.as_bytes() {
            return Err(TsaError::CertBinding(
                "the ESSCertIDv2 hash is not the hash of the signer certificate".into(),
            ));
        }
        return Ok(());
    }
    if let Some(v) = single_attr(attrs, ID_SIGNING_CERT) {
        let sc: SigningCertificate = v.decode_as().map_err(|e| malformed("signing-certificate", e))?;
        let first = sc
            .certs
            .first()
            .ok_or_else(|| TsaError::CertBinding("signing-certificate names no certificate".into()))?;
        if digest(&ID_SHA1, &cert_der)? != first.cert_hash.as_bytes() {
            return Err(TsaError::CertBinding(
                "the ESSCertID hash is not the SHA-1 of the signer certificate".into(),
            ));
        }
        return Ok(());
    }
    Err(TsaError::CertBinding(
        "no signing-certificate(-v2) attribute binds the signer certificate".into(),
    ))
}

/// Verifies `token` (DER ContentInfo) as an RFC 3161 timestamp over data whose SHA-256 is
/// `imprint`, chained to one of `roots` (see the crate documentation for every check).
///
/// # Errors
/// The first check that fails, as a [`TsaError`] whose text starts with a stable code.
pub fn verify_token(token: &[u8], imprint: &[u8; 32], roots: &[Certificate]) -> Result<Verified, TsaError> {
    let p = parse(token)?;
    let mi = &p.tst.message_imprint;
    if mi.hash_algorithm.oid != ID_SHA256 || mi.hashed_message.as_bytes() != imprint {
        return Err(TsaError::WrongImprint {
            found: hex(mi.hashed_message.as_bytes()),
            expected: hex(imprint),
        });
    }
    let (gen_text, gen_unix) = gen_time(&p.tst.gen_time)?;
    let mut signers = p.sd.signer_infos.0.iter();
    let si = match (signers.next(), signers.next()) {
        (Some(s), None) => s,
        _ => return Err(TsaError::Malformed("the token must have exactly one SignerInfo".into())),
    };
    check_signer_info(si, &p.sd)?;
    let attrs = si
        .signed_attrs
        .as_ref()
        .ok_or_else(|| TsaError::Malformed("SignerInfo without signed attributes".into()))?;
    let ct: ObjectIdentifier = single_attr(attrs, ID_CONTENT_TYPE)
        .ok_or_else(|| TsaError::Malformed("no single content-type attribute".into()))?
        .decode_as()
        .map_err(|e| malformed("content-type attribute", e))?;
    if ct != ID_CT_TSTINFO {
        return Err(TsaError::BadSignature(format!(
            "signed content type {ct} is not id-ct-TSTInfo"
        )));
    }
    let md: OctetString = single_attr(attrs, ID_MESSAGE_DIGEST)
        .ok_or_else(|| TsaError::Malformed("no single message-digest attribute".into()))?
        .decode_as()
        .map_err(|e| malformed("message-digest attribute", e))?;
    if digest(&si.digest_alg.oid, &p.tst_der)? != md.as_bytes() {
        return Err(TsaError::BadSignature(
            "the message-digest attribute is not the digest of the TSTInfo".into(),
        ));
    }
    let signer = p
        .certs
        .iter()
        .find(|c| signer_matches(&si.sid, c))
        .ok_or_else(|| TsaError::Untrusted("the token does not carry its signer's certificate".into()))?;
    // RFC 5652 §5.4: the signature covers the DER of the signed attributes as a SET OF.
    let signed: SetOfVec<x509_cert::attr::Attribute> = attrs.clone();
    let signed_der = signed.to_der().map_err(|e| malformed("signed attributes", e))?;
    let sig_digest = match si.signature_algorithm.oid {
        ID_RSA => si.digest_alg.oid,
        _ => cert_sig_digest(&si.signature_algorithm)?,
    };
    if sig_digest != si.digest_alg.oid {
        return Err(TsaError::BadSignature(
            "signature and digest algorithms disagree".into(),
        ));
    }
    rsa_verify(
        signer.tbs_certificate().subject_public_key_info(),
        &sig_digest,
        &signed_der,
        si.signature.as_bytes(),
    )?;
    check_binding(attrs, signer)?;
    check_timestamping_eku(signer)?;
    let root = chain_to_root(signer, &p.certs, roots, gen_unix)?;
    Ok(Verified {
        gen_time_unix: gen_unix,
        gen_time: gen_text,
        tsa_name: signer.tbs_certificate().subject().to_string(),
        root_name: root.tbs_certificate().subject().to_string(),
        policy: p.tst.policy.to_string(),
        serial: hex(p.tst.serial_number.as_bytes()),
    })
}

/// The SignerInfo's version matches its sid, its algorithms carry no parameters, and its digest
/// algorithm is one SignedData announces.
fn check_signer_info(si: &cms::signed_data::SignerInfo, sd: &cms::signed_data::SignedData) -> Result<(), TsaError> {
    let sid_version = match si.sid {
        cms::signed_data::SignerIdentifier::IssuerAndSerialNumber(_) => cms::content_info::CmsVersion::V1,
        cms::signed_data::SignerIdentifier::SubjectKeyIdentifier(_) => cms::content_info::CmsVersion::V3,
    };
    if si.version != sid_version {
        return Err(TsaError::Malformed(
            "SignerInfo version does not match its sid (RFC 5652 §5.3)".into(),
        ));
    }
    if !null_params(&si.digest_alg) || !null_params(&si.signature_algorithm) {
        return Err(TsaError::Malformed(
            "algorithm parameters other than absent or NULL".into(),
        ));
    }
    if !sd.digest_algorithms.iter().any(|a| *a == si.digest_alg) {
        return Err(TsaError::Malformed(
            "the signer's digest algorithm is not among SignedData.digestAlgorithms".into(),
        ));
    }
    Ok(())
}

/// The TSA certificate's extended key usage is a critical id-kp-timeStamping (RFC 3161 §2.3).
fn check_timestamping_eku(signer: &Certificate) -> Result<(), TsaError> {
    match signer
        .tbs_certificate()
        .extensions()
        .and_then(|x| x.iter().find(|e| e.extn_id == ID_EXT_KEY_USAGE))
    {
        None => {
            return Err(TsaError::NotTimestamping(
                "the TSA certificate has no extended key usage".into(),
            ));
        }
        Some(e) => {
            let eku = x509_cert::ext::pkix::ExtendedKeyUsage::from_der(e.extn_value.as_bytes())
                .map_err(|x| malformed("extended key usage", x))?;
            if !e.critical || !eku.0.contains(&ID_KP_TIMESTAMPING) {
                return Err(TsaError::NotTimestamping(
                    "the TSA certificate's extended key usage is not a critical id-kp-timeStamping".into(),
                ));
            }
        }
    }
    Ok(())
}

/// The root the signer chains to: signer → (intermediates carried in the token) → a supplied
/// root, each certificate valid at the token's time. A signer that is itself a supplied root is its own root.
fn chain_to_root<'a>(
    signer: &'a Certificate,
    certs: &'a [Certificate],
    roots: &'a [Certificate],
    gen_unix: u64,
) -> Result<&'a Certificate, TsaError> {
    let mut cur = signer;
    valid_at(cur, gen_unix)?;
    for _ in 0..MAX_CHAIN {
        if let Some(root) = roots.iter().find(|r| issued_by(cur, r)) {
            valid_at(root, gen_unix)?;
            return Ok(root);
        }
        if roots.iter().any(|r| r == cur) {
            return Ok(cur);
        }
        let next = certs
            .iter()
            .find(|c| *c != cur && is_ca(c) && issued_by(cur, c))
            .ok_or_else(|| {
                TsaError::Untrusted(format!(
                    "no chain from the TSA certificate {} to a supplied root",
                    signer.tbs_certificate().subject()
                ))
            })?;
        valid_at(next, gen_unix)?;
        cur = next;
    }
    Err(TsaError::Untrusted("certificate chain too long".into()))
}

/// Reads PEM certificates (one or more `CERTIFICATE` blocks).
///
/// # Errors
/// When the text holds no valid certificate.
pub fn certs_from_pem(pem: &[u8]) -> Result<Vec<Certificate>, TsaError> {
    let v = Certificate::load_pem_chain(pem).map_err(|e| malformed("PEM certificate", e))?;
    if v.is_empty() {
        return Err(TsaError::Malformed("no certificate in the PEM text".into()));
    }
    Ok(v)
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}
