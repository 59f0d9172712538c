// Slurm's compressed host lists on the forms Slurm produces: ranges, zero padding, several
// bracket groups, plain lists, and mixtures, each also compared with Slurm's own expansion
// (`scontrol show hostnames`, from tools/bootstrap.sh's slurm-client); and refusals that name
// the problem.
#include "maestro/shared/hostlist.h"

#include <gtest/gtest.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "maestro/shared/file_util.h"

namespace maestro {
namespace {

std::vector<std::string> Hosts(std::string_view list) {
  auto hosts = ExpandHostList(list);
  EXPECT_TRUE(hosts.ok()) << list << ": " << hosts.status().ToString();
  return hosts.ok() ? *hosts : std::vector<std::string>{};
}

using V = std::vector<std::string>;

TEST(HostListTest, ExpandsTheFormsSlurmWrites) {
  EXPECT_EQ(Hosts("node1"), V({"node1"}));
  EXPECT_EQ(Hosts("a,b,c"), V({"a", "b", "c"}));
  EXPECT_EQ(Hosts("node[1-3]"), V({"node1", "node2", "node3"}));
  EXPECT_EQ(Hosts("node[01-04,07]"), V({"node01", "node02", "node03", "node04", "node07"}));
  EXPECT_EQ(Hosts("n[08-11]"), V({"n08", "n09", "n10", "n11"}));
  EXPECT_EQ(Hosts("n[098-101]"), V({"n098", "n099", "n100", "n101"}));
  EXPECT_EQ(Hosts("n[9-10]"), V({"n9", "n10"}));
  EXPECT_EQ(Hosts("gpu[1-2]-ib"), V({"gpu1-ib", "gpu2-ib"}));
  EXPECT_EQ(Hosts("rack[1-2]-n[01-02]"), V({"rack1-n01", "rack1-n02", "rack2-n01", "rack2-n02"}));
  EXPECT_EQ(Hosts("login,node[1,3],gpu[07-08]-x,z"),
            V({"login", "node1", "node3", "gpu07-x", "gpu08-x", "z"}));
  EXPECT_EQ(Hosts("node[5]"), V({"node5"}));
  EXPECT_EQ(Hosts("10.0.0.[1-2]"), V({"10.0.0.1", "10.0.0.2"}));
  EXPECT_EQ(Hosts("node[0-9999]").size(), 10000u);
}

TEST(HostListTest, AgreesWithScontrol) {
  // scontrol needs a configuration to start, not a running cluster.
  const std::string dir = "/tmp/maestro_hostlist_" + std::to_string(::getpid());
  ASSERT_TRUE(MakeDirectories(dir).ok());
  ASSERT_TRUE(
      WriteFileAtomic(dir + "/slurm.conf", "ClusterName=x\nSlurmctldHost=localhost\n").ok());
  ::setenv("SLURM_CONF", (dir + "/slurm.conf").c_str(), 1);
  for (const char* list : {"node1", "a,b,c", "node[1-3]", "node[01-04,07]", "node[01-03,7]",
                           "n[08-11]", "n[098-101]", "n[9-10]", "rack[1-2]-n[01-02]",
                           "x[1-2]y[3-4]", "login,node[1,3],z", "10.0.0.[1-2]", "node[0-300]"}) {
    std::string command = "scontrol show hostnames '";
    command.append(list).append("' 2>&1");
    FILE* pipe = ::popen(command.c_str(), "r");
    ASSERT_NE(pipe, nullptr);
    std::vector<std::string> slurm;
    char line[512];
    while (::fgets(line, sizeof(line), pipe) != nullptr) {
      std::string host(line);
      while (!host.empty() && (host.back() == '\n' || host.back() == '\r')) host.pop_back();
      slurm.push_back(host);
    }
    const int status = ::pclose(pipe);
    ASSERT_EQ(status, 0) << "scontrol failed on " << list << " (tools/bootstrap.sh installs "
                         << "slurm-client): " << (slurm.empty() ? "" : slurm[0]);
    EXPECT_EQ(Hosts(list), slurm) << list;
  }
  ::unsetenv("SLURM_CONF");
  ASSERT_TRUE(RemoveTree(dir).ok());
}

TEST(HostListTest, RefusesWhatIsNotAHostList) {
  auto refused = [](std::string_view list) {
    auto hosts = ExpandHostList(list);
    EXPECT_EQ(hosts.status().code(), StatusCode::kInvalidArgument) << list;
    return hosts.status().message();
  };
  EXPECT_NE(refused("").find("empty"), std::string::npos);
  EXPECT_NE(refused("a,,b").find("an empty host name"), std::string::npos);
  EXPECT_NE(refused("node[1-3").find("unclosed"), std::string::npos);
  EXPECT_NE(refused("node1-3]").find("unopened"), std::string::npos);
  EXPECT_NE(refused("node[1-[2]]").find("nested"), std::string::npos);
  EXPECT_NE(refused("node[3-1]").find("runs backwards"), std::string::npos);
  EXPECT_NE(refused("node[a-b]").find("not a list of numbers"), std::string::npos);
  EXPECT_NE(refused("node[]").find("not a list of numbers"), std::string::npos);
  EXPECT_NE(refused("node[1-2-3]").find("not a list of numbers"), std::string::npos);
  EXPECT_NE(refused("n[0-99999999]").find("more than 65536 hosts"), std::string::npos);
  EXPECT_NE(refused("a[0-999]b[0-999]").find("more than 65536 hosts"), std::string::npos);
}

}  // namespace
}  // namespace maestro
