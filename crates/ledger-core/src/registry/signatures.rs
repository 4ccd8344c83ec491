//! Signature verification against the registry: the one signer loop
//! ([`Registry::verify_signers_with`]), strict and batch verification, and ballots' one-time keys.

use super::Registry;
use super::error::RegistryError;
use super::payload_type::kind_of;
use crate::dsse::Envelope;
use crate::keys::key_id;
use ed25519_dalek::VerifyingKey;

impl Registry {
    /// Verifies every signature of the envelope cryptographically against the registry's keys and
    /// returns the signers' key ids. Key material never changes for a key id, so a registry
    /// snapshot from before the entry gives the same answer. Every key id is looked up (and
    /// duplicates refused) before any cryptography, so a signature by a key the registry does not
    /// know costs no verification; each signature is then verified exactly once (strict).
    ///
    /// # Errors
    /// Unknown key, duplicate signer or bad signature.
    ///
    /// A `ballot` is the exception: it must carry exactly one signature, by the one-time key its
    /// payload names (`ballot_key`), which must not be a registry key; the election rules then
    /// check the credential that certifies that key.
    ///
    /// The log binding of the payload type ([`Self::check_log_binding`]) is checked first: it is
    /// part of what the signatures cover.
    pub fn verify_signatures(&self, env: &Envelope) -> Result<Vec<String>, RegistryError> {
        let pae = env.pae();
        self.verify_signers_with(env, |i, key| {
            env.signatures.get(i).is_some_and(|s| {
                ed25519_dalek::Signature::from_slice(&s.sig).is_ok_and(|sig| key.verify_strict(&pae, &sig).is_ok())
            })
        })
    }

    /// The one signer loop, shared by [`Self::verify_signatures`] and the verifier (which passes
    /// the results of its worker threads): the log binding, the ballot exception, every key id
    /// looked up and no key twice ([`RegistryError::DuplicateSigner`]) before any cryptography,
    /// then `verified(i, key)` for each signature in order. Returns the signers' key ids.
    ///
    /// # Errors
    /// As [`Self::verify_signatures`]; `verified` returning false is a
    /// [`RegistryError::BadSignature`].
    pub fn verify_signers_with(
        &self,
        env: &Envelope,
        mut verified: impl FnMut(usize, &VerifyingKey) -> bool,
    ) -> Result<Vec<String>, RegistryError> {
        self.check_log_binding(&env.payload_type)?;
        if kind_of(&env.payload_type) == Some("ballot") {
            return self.verify_ballot_signature(env);
        }
        let keys = self.known_signers(env)?;
        for (i, (s, key)) in env.signatures.iter().zip(&keys).enumerate() {
            if !verified(i, key) {
                return Err(RegistryError::BadSignature { keyid: s.keyid.clone() });
            }
        }
        Ok(env.signatures.iter().map(|s| s.keyid.clone()).collect())
    }

    /// The registry keys of the envelope's signatures, in order, without any cryptography.
    ///
    /// # Errors
    /// The first key id the registry does not know, or one that signed twice.
    fn known_signers(&self, env: &Envelope) -> Result<Vec<VerifyingKey>, RegistryError> {
        let mut out = Vec::with_capacity(env.signatures.len());
        for (i, s) in env.signatures.iter().enumerate() {
            let k = self
                .keys
                .get(&s.keyid)
                .ok_or_else(|| RegistryError::UnknownKey { keyid: s.keyid.clone() })?;
            // At most dsse::limits::MAX_SIGNATURES signatures: a scan is cheaper than a set.
            if env.signatures[..i].iter().any(|p| p.keyid == s.keyid) {
                return Err(RegistryError::DuplicateSigner { keyid: s.keyid.clone() });
            }
            out.push(k.key);
        }
        Ok(out)
    }

    fn verify_ballot_signature(&self, env: &Envelope) -> Result<Vec<String>, RegistryError> {
        let key = crate::election::ballot_signer(&env.payload).map_err(|detail| RegistryError::InvalidPayload {
            kind: "ballot".into(),
            detail: detail.to_string(),
        })?;
        let id = key_id(&key);
        let [s] = env.signatures.as_slice() else {
            return Err(RegistryError::InvalidPayload {
                kind: "ballot".into(),
                detail: format!("a ballot carries exactly one signature, by its ballot_key {id}"),
            });
        };
        if s.keyid != id {
            return Err(RegistryError::UnknownKey { keyid: s.keyid.clone() });
        }
        if self.keys.contains_key(&id) {
            return Err(RegistryError::Conflict(format!(
                "ballot_key {id} is a registry key: ballots are signed by one-time keys"
            )));
        }
        env.verify_signature(0, &key)
            .map_err(|_| RegistryError::BadSignature { keyid: id.clone() })?;
        Ok(vec![id])
    }

    /// [`Self::verify_signatures`] for many envelopes at once. Every key id is looked up first
    /// (an envelope naming an unknown key or a duplicate signer is refused without cryptography
    /// and stays out of the batch). The happy path then checks all remaining signatures with one
    /// Ed25519 batch verification (about 2.5× faster than one by one): each signature verified
    /// once. When the batch fails, every envelope in it is checked on its own with strict
    /// verification so that the failing ones are named and only they are refused.
    pub fn verify_signatures_batch(&self, envs: &[&Envelope]) -> Vec<Result<Vec<String>, RegistryError>> {
        let mut paes: Vec<Vec<u8>> = Vec::new();
        let mut msg_of: Vec<usize> = Vec::new();
        let mut sigs = Vec::new();
        let mut keys = Vec::new();
        // None: the envelope's signatures are in the batch and await its verdict.
        let mut out: Vec<Option<Result<Vec<String>, RegistryError>>> = Vec::with_capacity(envs.len());
        for env in envs {
            if let Err(e) = self.check_log_binding(&env.payload_type) {
                out.push(Some(Err(e)));
                continue;
            }
            if kind_of(&env.payload_type) == Some("ballot") {
                out.push(Some(self.verify_signatures(env)));
                continue;
            }
            let signers = match self.known_signers(env) {
                Ok(k) => k,
                Err(e) => {
                    out.push(Some(Err(e)));
                    continue;
                }
            };
            let mut parsed = Vec::with_capacity(signers.len());
            let mut strict = false;
            for (s, k) in env.signatures.iter().zip(&signers) {
                let Ok(sig) = ed25519_dalek::Signature::from_slice(&s.sig) else {
                    strict = true;
                    break;
                };
                if !crate::keys::batch_compatible(k, &s.sig) {
                    // Strict verification decides (and refuses) what batching could wrongly accept.
                    strict = true;
                    break;
                }
                parsed.push(sig);
            }
            if strict {
                out.push(Some(self.verify_signatures(env)));
                continue;
            }
            paes.push(env.pae());
            for (sig, k) in parsed.into_iter().zip(signers) {
                msg_of.push(paes.len() - 1);
                sigs.push(sig);
                keys.push(k);
            }
            out.push(None);
        }
        let refs: Vec<&[u8]> = msg_of.iter().map(|i| paes[*i].as_slice()).collect();
        let batch_ok = sigs.is_empty() || ed25519_dalek::verify_batch(&refs, &sigs, &keys).is_ok();
        envs.iter()
            .zip(out)
            .map(|(env, r)| match r {
                Some(r) => r,
                None if batch_ok => Ok(env.signatures.iter().map(|s| s.keyid.clone()).collect()),
                None => self.verify_signatures(env),
            })
            .collect()
    }
}
