#include "maestro/shared/security.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netdb.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <memory>

#include "maestro/shared/file_util.h"

namespace maestro::security {
namespace {

template <typename T, void (*Free)(T*)>
struct Deleter {
  void operator()(T* p) const { Free(p); }
};
using KeyPtr = std::unique_ptr<EVP_PKEY, Deleter<EVP_PKEY, EVP_PKEY_free>>;
using CertPtr = std::unique_ptr<X509, Deleter<X509, X509_free>>;
using BioPtr = std::unique_ptr<BIO, Deleter<BIO, BIO_free_all>>;
using CtxPtr = std::unique_ptr<SSL_CTX, Deleter<SSL_CTX, SSL_CTX_free>>;
using SslPtr = std::unique_ptr<SSL, Deleter<SSL, SSL_free>>;

std::string Hex(const unsigned char* bytes, size_t n) {
  static const char* digits = "0123456789abcdef";
  std::string out(2 * n, '0');
  for (size_t i = 0; i < n; ++i) {
    out[2 * i] = digits[bytes[i] >> 4];
    out[2 * i + 1] = digits[bytes[i] & 15];
  }
  return out;
}

bool IsHex(std::string_view text) {
  for (char c : text) {
    if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) return false;
  }
  return !text.empty();
}

std::string OpenSslError(const std::string& what) {
  const unsigned long code = ERR_get_error();
  char text[256] = "unknown error";
  if (code != 0) ERR_error_string_n(code, text, sizeof(text));
  ERR_clear_error();
  return what + ": " + text;
}

std::string HmacHex(std::string_view key, std::string_view data) {
  unsigned char mac[EVP_MAX_MD_SIZE];
  unsigned int length = 0;
  HMAC(EVP_sha256(), key.data(), static_cast<int>(key.size()),
       reinterpret_cast<const unsigned char*>(data.data()), data.size(), mac, &length);
  return Hex(mac, length);
}

std::string HexEncode(std::string_view text) {
  return Hex(reinterpret_cast<const unsigned char*>(text.data()), text.size());
}

Result<std::string> HexDecode(std::string_view hex) {
  if (hex.size() % 2 != 0 || !IsHex(hex)) return InvalidArgumentError("not hex");
  std::string out(hex.size() / 2, '\0');
  auto nibble = [](char c) { return c <= '9' ? c - '0' : c - 'a' + 10; };
  for (size_t i = 0; i < out.size(); ++i) {
    out[i] = static_cast<char>(nibble(hex[2 * i]) << 4 | nibble(hex[2 * i + 1]));
  }
  return out;
}

KeyPtr NewKey() { return KeyPtr(EVP_EC_gen("P-256")); }

Result<std::string> PemOfKey(EVP_PKEY* key) {
  BioPtr bio(BIO_new(BIO_s_mem()));
  if (!PEM_write_bio_PrivateKey(bio.get(), key, nullptr, nullptr, 0, nullptr, nullptr)) {
    return InternalError(OpenSslError("writing a private key"));
  }
  char* data = nullptr;
  const long n = BIO_get_mem_data(bio.get(), &data);
  return std::string(data, static_cast<size_t>(n));
}

Result<std::string> PemOfCert(X509* cert) {
  BioPtr bio(BIO_new(BIO_s_mem()));
  if (!PEM_write_bio_X509(bio.get(), cert)) return InternalError(OpenSslError("writing a cert"));
  char* data = nullptr;
  const long n = BIO_get_mem_data(bio.get(), &data);
  return std::string(data, static_cast<size_t>(n));
}

Status AddExtension(X509* cert, X509* issuer, int nid, const std::string& value) {
  X509V3_CTX ctx;
  X509V3_set_ctx_nodb(&ctx);
  X509V3_set_ctx(&ctx, issuer, cert, nullptr, nullptr, 0);
  X509_EXTENSION* extension = X509V3_EXT_conf_nid(nullptr, &ctx, nid, value.c_str());
  if (extension == nullptr) return InternalError(OpenSslError("extension " + value));
  const int added = X509_add_ext(cert, extension, -1);
  X509_EXTENSION_free(extension);
  return added ? OkStatus() : InternalError(OpenSslError("adding extension " + value));
}

// A certificate for `key` named `common_name`, signed by (issuer, issuer_key), or self-signed
// when issuer is null.
Result<CertPtr> MakeCert(EVP_PKEY* key, const std::string& common_name, X509* issuer,
                         EVP_PKEY* issuer_key, int64_t days,
                         const std::vector<std::string>& extensions_by_nid_value,
                         const std::vector<int>& nids) {
  CertPtr cert(X509_new());
  X509_set_version(cert.get(), 2);
  unsigned char serial[16];
  RAND_bytes(serial, sizeof(serial));
  serial[0] &= 0x7f;  // positive
  BIGNUM* bn = BN_bin2bn(serial, sizeof(serial), nullptr);
  BN_to_ASN1_INTEGER(bn, X509_get_serialNumber(cert.get()));
  BN_free(bn);
  X509_gmtime_adj(X509_getm_notBefore(cert.get()), -3600);  // clocks a little apart
  X509_gmtime_adj(X509_getm_notAfter(cert.get()), static_cast<long>(days * 24 * 3600));
  X509_set_pubkey(cert.get(), key);
  X509_NAME* name = X509_get_subject_name(cert.get());
  X509_NAME_add_entry_by_txt(name, "O", MBSTRING_ASC,
                             reinterpret_cast<const unsigned char*>("maestro"), -1, -1, 0);
  X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC,
                             reinterpret_cast<const unsigned char*>(common_name.c_str()), -1, -1,
                             0);
  X509* signer = issuer != nullptr ? issuer : cert.get();
  X509_set_issuer_name(cert.get(), X509_get_subject_name(signer));
  for (size_t i = 0; i < nids.size(); ++i) {
    MAESTRO_RETURN_IF_ERROR(AddExtension(cert.get(), signer, nids[i], extensions_by_nid_value[i]));
  }
  if (!X509_sign(cert.get(), issuer_key != nullptr ? issuer_key : key, EVP_sha256())) {
    return InternalError(OpenSslError("signing " + common_name));
  }
  return cert;
}

bool LooksLikeIp(const std::string& host) {
  unsigned char buffer[sizeof(in6_addr)];
  return inet_pton(AF_INET, host.c_str(), buffer) == 1 ||
         inet_pton(AF_INET6, host.c_str(), buffer) == 1;
}

Result<std::string> ServerCertPem(EVP_PKEY* key, const std::string& common_name, X509* ca,
                                  EVP_PKEY* ca_key, const std::vector<std::string>& hosts) {
  std::string san = "DNS:localhost,IP:127.0.0.1,IP:::1";
  for (const std::string& host : hosts) {
    if (host.empty() || host.find_first_of(", \t\n") != std::string::npos) {
      return InvalidArgumentError("--host: '" + host + "' is not a host name or IP address");
    }
    san += (LooksLikeIp(host) ? ",IP:" : ",DNS:") + host;
  }
  MAESTRO_ASSIGN_OR_RETURN(
      CertPtr cert,
      MakeCert(key, common_name, ca, ca_key, 825,
               {"critical,CA:FALSE", "critical,digitalSignature,keyEncipherment", "serverAuth",
                san, "hash", "keyid"},
               {NID_basic_constraints, NID_key_usage, NID_ext_key_usage, NID_subject_alt_name,
                NID_subject_key_identifier, NID_authority_key_identifier}));
  return PemOfCert(cert.get());
}

// host and port of "host:port" or "[v6]:port".
bool SplitHostPort(const std::string& address, std::string& host, std::string& port) {
  if (!address.empty() && address.front() == '[') {
    const size_t close = address.find(']');
    if (close == std::string::npos || close + 1 >= address.size() || address[close + 1] != ':') {
      return false;
    }
    host = address.substr(1, close - 1);
    port = address.substr(close + 2);
  } else {
    const size_t colon = address.rfind(':');
    if (colon == std::string::npos) return false;
    host = address.substr(0, colon);
    port = address.substr(colon + 1);
  }
  return !host.empty() && !port.empty();
}

// A connected TCP socket within `timeout_ms`, or -1.
int ConnectWithTimeout(const std::string& host, const std::string& port, int64_t timeout_ms) {
  addrinfo hints{};
  hints.ai_socktype = SOCK_STREAM;
  addrinfo* found = nullptr;
  if (getaddrinfo(host.c_str(), port.c_str(), &hints, &found) != 0) return -1;
  int fd = -1;
  for (addrinfo* a = found; a != nullptr; a = a->ai_next) {
    fd = socket(a->ai_family, a->ai_socktype | SOCK_CLOEXEC | SOCK_NONBLOCK, a->ai_protocol);
    if (fd < 0) continue;
    const int connected = connect(fd, a->ai_addr, a->ai_addrlen);
    if (connected != 0 && errno == EINPROGRESS) {
      pollfd p{fd, POLLOUT, 0};
      if (poll(&p, 1, static_cast<int>(timeout_ms)) == 1) {
        int error = 0;
        socklen_t length = sizeof(error);
        getsockopt(fd, SOL_SOCKET, SO_ERROR, &error, &length);
        errno = error;
      } else {
        errno = ETIMEDOUT;
      }
    } else if (connected == 0) {
      errno = 0;
    }  // else: refused at once
    if (errno == 0) break;
    close(fd);
    fd = -1;
  }
  freeaddrinfo(found);
  if (fd >= 0) {
    fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) & ~O_NONBLOCK);
    timeval tv{static_cast<time_t>(timeout_ms / 1000),
               static_cast<suseconds_t>((timeout_ms % 1000) * 1000)};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
  }
  return fd;
}

std::string NameOf(X509_NAME* name) {
  if (name == nullptr) return "?";
  char text[512];
  X509_NAME_oneline(name, text, sizeof(text));
  return text;
}

}  // namespace

const char* RoleName(Role role) {
  switch (role) {
    case Role::kViewer:
      return "viewer";
    case Role::kUser:
      return "user";
    case Role::kAdmin:
      return "admin";
    case Role::kWorker:
      return "worker";
  }
  return "?";
}

Result<Role> ParseRole(std::string_view name) {
  for (Role role : {Role::kViewer, Role::kUser, Role::kAdmin, Role::kWorker}) {
    if (name == RoleName(role)) return role;
  }
  return InvalidArgumentError("role: viewer, user, admin or worker, not '" + std::string(name) +
                              "'");
}

Json TokenRecord::ToJson() const {
  return Json(Json::Object{{"id", id},
                           {"name", name},
                           {"role", RoleName(role)},
                           {"worker", worker},
                           {"sha256", sha256},
                           {"created_ms", created_ms},
                           {"expires_ms", expires_ms},
                           {"revoked_ms", revoked_ms},
                           {"created_by", created_by}});
}

Result<TokenRecord> TokenRecord::FromJson(const Json& json) {
  if (!json.is_object()) return InvalidArgumentError("token record: not an object");
  TokenRecord r;
  auto text = [&](const char* key, std::string& out) {
    const Json* v = json.Find(key);
    if (v != nullptr && v->is_string()) out = v->as_string();
  };
  auto number = [&](const char* key, int64_t& out) {
    const Json* v = json.Find(key);
    if (v != nullptr && v->is_int()) out = v->as_int();
  };
  std::string role;
  text("id", r.id);
  text("name", r.name);
  text("role", role);
  text("worker", r.worker);
  text("sha256", r.sha256);
  text("created_by", r.created_by);
  number("created_ms", r.created_ms);
  number("expires_ms", r.expires_ms);
  number("revoked_ms", r.revoked_ms);
  MAESTRO_ASSIGN_OR_RETURN(r.role, ParseRole(role));
  if (r.id.size() != 16 || !IsHex(r.id) || r.sha256.size() != 64 || !IsHex(r.sha256)) {
    return InvalidArgumentError("token record: malformed id or hash");
  }
  return r;
}

std::string RandomHex(size_t bytes) {
  std::string raw(bytes, '\0');
  if (RAND_bytes(reinterpret_cast<unsigned char*>(raw.data()), static_cast<int>(bytes)) != 1) {
    throw Error(InternalError(OpenSslError("RAND_bytes")));  // no entropy: nothing is safe
  }
  return HexEncode(raw);
}

std::string Sha256Hex(std::string_view bytes) {
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int length = 0;
  EVP_Digest(bytes.data(), bytes.size(), digest, &length, EVP_sha256(), nullptr);
  return Hex(digest, length);
}

bool ConstantTimeEqual(std::string_view a, std::string_view b) {
  return a.size() == b.size() && CRYPTO_memcmp(a.data(), b.data(), a.size()) == 0;
}

std::string NewBearerToken(TokenRecord& record) {
  record.id = RandomHex(8);
  const std::string token = "mst1_" + record.id + "_" + RandomHex(32);
  record.sha256 = Sha256Hex(token);
  return token;
}

Result<std::string> BearerTokenId(std::string_view token) {
  // mst1_ + 16 + _ + 64
  if (token.size() != 5 + 16 + 1 + 64 || token.substr(0, 5) != "mst1_" || token[21] != '_' ||
      !IsHex(token.substr(5, 16)) || !IsHex(token.substr(22))) {
    return UnauthenticatedError("malformed: not a maestro token");
  }
  return std::string(token.substr(5, 16));
}

std::string SignDataToken(const DataClaims& claims, std::string_view key) {
  const std::string body = Json(Json::Object{{"sub", claims.subject},
                                             {"trial", claims.trial},
                                             {"attempt", claims.attempt},
                                             {"exp", claims.expires_ms}})
                               .Dump();
  const std::string signed_part = "mdt1." + HexEncode(body);
  return signed_part + "." + HmacHex(key, signed_part);
}

Result<DataClaims> VerifyDataToken(std::string_view token, std::string_view key, int64_t now_ms) {
  if (token.size() > 4096 || token.substr(0, 5) != "mdt1.") {
    return UnauthenticatedError("malformed: not a data token");
  }
  const size_t dot = token.rfind('.');
  if (dot <= 5) return UnauthenticatedError("malformed: no signature");
  const std::string_view signed_part = token.substr(0, dot);
  if (!ConstantTimeEqual(HmacHex(key, signed_part), token.substr(dot + 1))) {
    return UnauthenticatedError("bad signature: not signed with this cluster's data-token.key");
  }
  auto body = HexDecode(signed_part.substr(5));
  if (!body.ok()) return UnauthenticatedError("malformed: claims not hex");
  auto json = Json::Parse(*body);
  if (!json.ok() || !json->is_object()) return UnauthenticatedError("malformed: claims");
  DataClaims claims;
  const Json* sub = json->Find("sub");
  const Json* exp = json->Find("exp");
  if (sub == nullptr || !sub->is_string() || exp == nullptr || !exp->is_int()) {
    return UnauthenticatedError("malformed: claims lack sub or exp");
  }
  claims.subject = sub->as_string();
  claims.expires_ms = exp->as_int();
  claims.trial = json->IntOr("trial", 0);
  claims.attempt = json->IntOr("attempt", 0);
  if (claims.expires_ms <= now_ms) {
    return UnauthenticatedError("expired: the data token of " + claims.subject + " expired " +
                                std::to_string((now_ms - claims.expires_ms) / 1000) + " s ago");
  }
  return claims;
}

Result<std::string> InitCluster(const ClusterInit& init) {
  if (init.dir.empty()) return InvalidArgumentError("--dir is required");
  const std::string dir = init.dir;
  if (PathExists(dir + "/" + kCaKeyFile) || PathExists(dir + "/" + kCaCertFile)) {
    return FailedPreconditionError(dir + " already holds a cluster CA (" + kCaCertFile +
                                   "): refusing to replace it (every credential signed by it "
                                   "would stop working); use another --dir");
  }
  MAESTRO_RETURN_IF_ERROR(MakeDirectories(dir));
  chmod(dir.c_str(), 0700);
  KeyPtr ca_key = NewKey();
  if (!ca_key) return InternalError(OpenSslError("generating the CA key"));
  MAESTRO_ASSIGN_OR_RETURN(
      CertPtr ca, MakeCert(ca_key.get(), "maestro cluster CA", nullptr, nullptr, 3650,
                           {"critical,CA:TRUE,pathlen:0", "critical,keyCertSign,cRLSign", "hash"},
                           {NID_basic_constraints, NID_key_usage, NID_subject_key_identifier}));
  MAESTRO_ASSIGN_OR_RETURN(std::string ca_pem, PemOfCert(ca.get()));
  MAESTRO_ASSIGN_OR_RETURN(std::string ca_key_pem, PemOfKey(ca_key.get()));
  MAESTRO_RETURN_IF_ERROR(WriteSecretFile(dir + "/" + kCaKeyFile, ca_key_pem));
  MAESTRO_RETURN_IF_ERROR(WriteFileAtomic(dir + "/" + kCaCertFile, ca_pem));
  const std::pair<const char*, std::pair<const char*, const char*>> servers[] = {
      {"maestro-coordinator", {kCoordinatorCertFile, kCoordinatorKeyFile}},
      {"maestro-data", {kDataCertFile, kDataKeyFile}}};
  for (const auto& [name, files] : servers) {
    KeyPtr key = NewKey();
    if (!key) return InternalError(OpenSslError("generating a key"));
    MAESTRO_ASSIGN_OR_RETURN(std::string pem,
                             ServerCertPem(key.get(), name, ca.get(), ca_key.get(), init.hosts));
    MAESTRO_ASSIGN_OR_RETURN(std::string key_pem, PemOfKey(key.get()));
    MAESTRO_RETURN_IF_ERROR(WriteSecretFile(dir + "/" + files.second, key_pem));
    MAESTRO_RETURN_IF_ERROR(WriteFileAtomic(dir + "/" + files.first, pem));
  }
  MAESTRO_RETURN_IF_ERROR(WriteSecretFile(dir + "/" + kDataTokenKeyFile, RandomHex(32) + "\n"));
  TokenRecord admin;
  admin.name = "admin";
  admin.role = Role::kAdmin;
  admin.created_ms = NowMs();
  admin.expires_ms = init.admin_lifetime_ms > 0 ? admin.created_ms + init.admin_lifetime_ms : 0;
  admin.created_by = "cluster init";
  const std::string token = NewBearerToken(admin);
  MAESTRO_RETURN_IF_ERROR(WriteSecretFile(dir + "/" + kAdminTokenFile, token + "\n"));
  MAESTRO_RETURN_IF_ERROR(
      WriteFileAtomic(dir + "/" + kAdminTokenRecordFile, admin.ToJson().Dump() + "\n"));
  return token;
}

Result<std::string> ReadSecretFile(const std::string& path) {
  struct stat info {};
  if (stat(path.c_str(), &info) != 0) {
    return NotFoundError("secret file " + path + ": " + std::strerror(errno));
  }
  if ((info.st_mode & 0077) != 0) {
    return InvalidArgumentError("secret file " + path + " may be read by others (mode " +
                                std::to_string((info.st_mode >> 6) & 7) +
                                std::to_string((info.st_mode >> 3) & 7) +
                                std::to_string(info.st_mode & 7) + "): chmod 600 it");
  }
  MAESTRO_ASSIGN_OR_RETURN(std::string text, ReadFile(path));
  const size_t first = text.find_first_not_of(" \t\r\n");
  const size_t last = text.find_last_not_of(" \t\r\n");
  if (first == std::string::npos) return InvalidArgumentError("secret file " + path + " is empty");
  return text.substr(first, last - first + 1);
}

Status WriteSecretFile(const std::string& path, std::string_view content) {
  return WriteFileAtomic(path, content, 0600);
}

Result<int64_t> ParseDurationMs(std::string_view text) {
  if (text == "never") return int64_t{0};
  if (text.size() < 2) {
    return InvalidArgumentError("a duration like 90d, 12h, 30m, 45s or never, not '" +
                                std::string(text) + "'");
  }
  const char unit = text.back();
  const std::string number(text.substr(0, text.size() - 1));
  char* end = nullptr;
  const long long value = std::strtoll(number.c_str(), &end, 10);
  const int64_t scale = unit == 'd'   ? 86400000
                        : unit == 'h' ? 3600000
                        : unit == 'm' ? 60000
                        : unit == 's' ? 1000
                                      : 0;
  if (scale == 0 || *end != '\0' || value <= 0 || value > 100LL * 365 * 86400) {
    return InvalidArgumentError("a duration like 90d, 12h, 30m, 45s or never, not '" +
                                std::string(text) + "'");
  }
  return static_cast<int64_t>(value) * scale;
}

std::string DiagnoseTls(const std::string& address, const std::string& ca_file,
                        int64_t timeout_ms) {
  std::string host, port;
  if (!SplitHostPort(address, host, port)) return "'" + address + "' is not host:port";
  CtxPtr ctx(SSL_CTX_new(TLS_client_method()));
  if (!ctx) return OpenSslError("TLS context");
  if (SSL_CTX_load_verify_locations(ctx.get(), ca_file.c_str(), nullptr) != 1) {
    return OpenSslError("cannot load the cluster CA " + ca_file);
  }
  SSL_CTX_set_verify(ctx.get(), SSL_VERIFY_NONE, nullptr);  // judged below, to say why
  const int fd = ConnectWithTimeout(host, port, timeout_ms);
  if (fd < 0) return "";  // nothing answers there: TLS is not the reason
  SslPtr ssl(SSL_new(ctx.get()));
  SSL_set_fd(ssl.get(), fd);
  static const unsigned char kAlpn[] = {2, 'h', '2'};
  SSL_set_alpn_protos(ssl.get(), kAlpn, sizeof(kAlpn));
  if (LooksLikeIp(host)) {
    X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(ssl.get()), host.c_str());
  } else {
    SSL_set_tlsext_host_name(ssl.get(), host.c_str());
    SSL_set1_host(ssl.get(), host.c_str());
  }
  std::string out;
  if (SSL_connect(ssl.get()) != 1) {
    out = "the server at " + address +
          " does not complete a TLS handshake (a plaintext server, or not a maestro server): " +
          OpenSslError("TLS");
  } else {
    X509* peer = SSL_get1_peer_certificate(ssl.get());
    const long verdict = SSL_get_verify_result(ssl.get());
    if (peer == nullptr) {
      out = "the server at " + address + " presented no certificate";
    } else if (verdict != X509_V_OK) {
      out = "the server at " + address + " presented a certificate (subject " +
            NameOf(X509_get_subject_name(peer)) + ", issuer " +
            NameOf(X509_get_issuer_name(peer)) + ") that does not verify against the cluster CA " +
            ca_file + ": " + X509_verify_cert_error_string(verdict);
    }
    X509_free(peer);
    SSL_shutdown(ssl.get());
  }
  close(fd);
  return out;
}

int64_t NowMs() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

}  // namespace maestro::security
