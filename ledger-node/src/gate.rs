//! Readiness: the gRPC port answers while the node is still verifying its store and folding its
//! state. Until [`Gate::open`] the Ledger service answers every call UNAVAILABLE (and health says
//! NOT_SERVING); afterwards the gate passes every call to the real service.

use std::convert::Infallible;
use std::sync::{Arc, OnceLock};
use tonic::body::Body;
use tonic::codegen::{BoxFuture, Context, Poll, Service, http};
use tonic::server::NamedService;

/// A service that answers UNAVAILABLE until it is opened with the real one.
pub struct Gate<S>(Arc<OnceLock<S>>);

impl<S> Clone for Gate<S> {
    fn clone(&self) -> Self {
        Gate(self.0.clone())
    }
}

impl<S> Gate<S> {
    /// A closed gate.
    pub fn new() -> Self {
        Gate(Arc::new(OnceLock::new()))
    }

    /// Opens the gate: from now on calls go to `service`.
    pub fn open(&self, service: S) {
        let _ = self.0.set(service);
    }
}

impl<S: NamedService> NamedService for Gate<S> {
    const NAME: &'static str = S::NAME;
}

impl<S> Service<http::Request<Body>> for Gate<S>
where
    S: Service<http::Request<Body>, Response = http::Response<Body>, Error = Infallible> + Clone + Send + 'static,
    S::Future: Send + 'static,
{
    type Response = http::Response<Body>;
    type Error = Infallible;
    type Future = BoxFuture<Self::Response, Self::Error>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: http::Request<Body>) -> Self::Future {
        match self.0.get() {
            Some(s) => {
                let mut s = s.clone();
                Box::pin(async move { s.call(req).await })
            }
            None => Box::pin(async {
                Ok(tonic::Status::unavailable(
                    "the node is starting (verifying its store and folding its state); retry shortly",
                )
                .into_http())
            }),
        }
    }
}
