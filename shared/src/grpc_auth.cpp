#include "maestro/shared/grpc_auth.h"

#include <arpa/inet.h>
#include <sys/stat.h>

#include <cstdlib>
#include <iostream>
#include <mutex>

#include "maestro/shared/file_util.h"
#include "maestro/shared/security.h"

namespace maestro {

ClientAuth ClientAuthFromEnvironment(const char* token_variable) {
  ClientAuth auth;
  if (const char* ca = std::getenv("MAESTRO_CA")) auth.ca_file = ca;
  if (const char* token = std::getenv(token_variable)) auth.token_file = token;
  return auth;
}

Result<std::shared_ptr<grpc::ChannelCredentials>> MakeChannelCredentials(
    const ClientAuth& auth, const std::string& address) {
  if (auth.ca_file.empty()) {
    if (!auth.token_file.empty() || !auth.token.empty()) {
      return InvalidArgumentError(
          "a token file without the cluster CA (--ca or MAESTRO_CA): a token is never sent "
          "over plaintext");
    }
    // Plaintext only reaches servers run --insecure, which listen on loopback alone: anything
    // else answering in plaintext is not ours.
    if (!IsLoopbackAddress(address)) {
      return InvalidArgumentError("no cluster CA (--ca or MAESTRO_CA) to check " + address +
                                  " against: plaintext is spoken only to loopback addresses");
    }
    return grpc::InsecureChannelCredentials();
  }
  auto ca = ReadFile(auth.ca_file);
  if (!ca.ok()) return ca.status().WithContext("the cluster CA (--ca or MAESTRO_CA)");
  grpc::SslCredentialsOptions options;
  options.pem_root_certs = *ca;
  auto tls = grpc::SslCredentials(options);
  std::string token = auth.token;
  if (token.empty() && !auth.token_file.empty()) {
    // Read once: a program holding a channel for a long time and a token that rotates (a
    // trainer's data token) attaches it per call instead (TokenFile).
    MAESTRO_ASSIGN_OR_RETURN(token, security::ReadSecretFile(auth.token_file));
  }
  if (token.empty()) return tls;  // the server refuses every call: UNAUTHENTICATED
  return grpc::CompositeChannelCredentials(tls, grpc::AccessTokenCredentials(token));
}

Result<std::string> TokenFile::Current() {
  struct stat info {};
  std::lock_guard<std::mutex> lock(mutex_);
  if (stat(path_.c_str(), &info) == 0 && !token_.empty() && info.st_mtim.tv_sec == seen_.tv_sec &&
      info.st_mtim.tv_nsec == seen_.tv_nsec && info.st_ino == inode_) {
    return token_;
  }
  MAESTRO_ASSIGN_OR_RETURN(token_, security::ReadSecretFile(path_));
  seen_ = info.st_mtim;
  inode_ = info.st_ino;
  return token_;
}

Status TokenFile::Attach(grpc::ClientContext& context) {
  if (path_.empty()) return OkStatus();
  MAESTRO_ASSIGN_OR_RETURN(std::string token, Current());
  context.AddMetadata("authorization", "Bearer " + token);
  return OkStatus();
}

Result<std::shared_ptr<grpc::ServerCredentials>> MakeServerCredentials(
    const std::string& cert_file, const std::string& key_file) {
  auto cert = ReadFile(cert_file);
  if (!cert.ok()) return cert.status().WithContext("the server certificate");
  auto key = security::ReadSecretFile(key_file);
  if (!key.ok()) return key.status().WithContext("the server key");
  grpc::SslServerCredentialsOptions options(GRPC_SSL_DONT_REQUEST_CLIENT_CERTIFICATE);
  options.pem_key_cert_pairs.push_back({*key + "\n", *cert});
  return grpc::SslServerCredentials(options);
}

void RefusalLog::Write(const grpc::ServerContext& context, const std::string& rpc,
                       const std::string& who, const std::string& message) {
  std::lock_guard<std::mutex> lock(mutex_);
  const auto now = std::chrono::steady_clock::now();
  if (now - window_ > std::chrono::seconds(1)) {
    if (suppressed_ > 0) {
      std::cerr << program_ << ": " << suppressed_ << " more refusals not logged" << std::endl;
    }
    window_ = now;
    lines_ = 0;
    suppressed_ = 0;
  }
  if (++lines_ > 10) {
    ++suppressed_;
    return;
  }
  std::cerr << program_ << ": refused " << rpc << " from " << context.peer() << " (" << who
            << "): " << message << std::endl;
}

std::string BearerToken(const grpc::ServerContext& context) {
  const auto& metadata = context.client_metadata();
  auto it = metadata.find("authorization");
  if (it == metadata.end()) return "";
  const std::string value(it->second.data(), it->second.size());
  if (value.rfind("Bearer ", 0) != 0) return "";
  return value.substr(7);
}

std::string ExplainTlsFailure(const std::string& address, const ClientAuth& auth) {
  if (auth.ca_file.empty()) return "";
  return security::DiagnoseTls(address, auth.ca_file);
}

bool IsLoopbackAddress(const std::string& address) {
  std::string host = address;
  if (!host.empty() && host.front() == '[') {
    host = host.substr(1, host.find(']') - 1);
  } else if (const size_t colon = host.rfind(':'); colon != std::string::npos) {
    host = host.substr(0, colon);
  }
  if (host == "localhost" || host == "::1") return true;
  in_addr v4{};
  return inet_pton(AF_INET, host.c_str(), &v4) == 1 && (ntohl(v4.s_addr) >> 24) == 127;
}

}  // namespace maestro
