/*
 * Transport failures as people read them: what `fetch` threw when it reached no HTTP answer, for the
 * agent and the admin CLI alike. A certificate the client does not trust is the one worth a hint of
 * its own: the server uses a private CA or a self-signed certificate, and Node only trusts the
 * system's CAs plus those in NODE_EXTRA_CA_CERTS (read when the process starts).
 */

/** Node's (OpenSSL's) codes for a server certificate that does not verify. */
const UNTRUSTED = new Set([
  'DEPTH_ZERO_SELF_SIGNED_CERT',
  'SELF_SIGNED_CERT_IN_CHAIN',
  'UNABLE_TO_VERIFY_LEAF_SIGNATURE',
  'UNABLE_TO_GET_ISSUER_CERT',
  'UNABLE_TO_GET_ISSUER_CERT_LOCALLY',
  'CERT_UNTRUSTED',
  'CERT_HAS_EXPIRED',
  'CERT_NOT_YET_VALID',
  'ERR_TLS_CERT_ALTNAME_INVALID',
]);

export interface TransportFailure {
  message: string;
  /** set when the failure is the server's certificate */
  tls?: { code: string; hint: string };
}

export function describeTransportFailure(e: unknown): TransportFailure {
  const err = e as Error & { cause?: { code?: string; message?: string } };
  if (err.name === 'TimeoutError' || err.name === 'AbortError') {
    return { message: 'the server did not answer in time' };
  }
  const cause = err.cause;
  if (cause?.code && UNTRUSTED.has(cause.code)) {
    const hint =
      cause.code === 'ERR_TLS_CERT_ALTNAME_INVALID'
        ? 'use the host name the certificate was issued for in the server URL'
        : cause.code === 'CERT_HAS_EXPIRED' || cause.code === 'CERT_NOT_YET_VALID'
          ? "renew the server's certificate (or check this machine's clock)"
          : "trust the server's CA: start suture with NODE_EXTRA_CA_CERTS=/path/to/ca.pem (`suture agent install-service --ca` puts it in the unit)";
    return {
      message: `the server's TLS certificate is not trusted: ${cause.message ?? cause.code} (${cause.code})`,
      tls: { code: cause.code, hint },
    };
  }
  if (cause?.code === 'ECONNREFUSED')
    return { message: `connection refused (${cause.message ?? 'ECONNREFUSED'})` };
  if (cause?.message) return { message: cause.message };
  return { message: err.message };
}

/** True when `url` is plain HTTP to something other than this machine: secrets would cross a network in clear. */
export function isCleartextRemote(url: string): boolean {
  let u: URL;
  try {
    u = new URL(url);
  } catch {
    return false;
  }
  if (u.protocol !== 'http:') return false;
  const host = u.hostname.replace(/^\[|\]$/g, '');
  return !(host === 'localhost' || host === '::1' || /^127\./.test(host));
}
