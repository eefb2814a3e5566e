package io.zenith.gateway.cli;

import io.zenith.gateway.control.ComputeNode;
import io.zenith.gateway.control.ControlPlaneException;
import io.zenith.gateway.control.Repository;
import io.zenith.gateway.control.Tenants;
import picocli.CommandLine.Option;

/**
 * {@code --tenant NAME|ID}, the picocli mixin of every branch and pg command: which tenant's
 * branches and computes the command acts on, the repository's first tenant when not given. Not
 * thread-safe (picocli fills the field; one instance runs once).
 */
final class TenantOption {
  @Option(
      names = "--tenant",
      paramLabel = "NAME|ID",
      description = "Tenant, by name or id (default: the repository's first tenant).")
  String tenant;

  /** The tenant named, or the first one; a clear error for an unknown one. */
  Tenants.Ref resolve(Repository repo) {
    return repo.tenant(tenant);
  }

  /** The compute {@code name}, which must belong to the tenant if one was named. */
  ComputeNode compute(Repository repo, String name) {
    ComputeNode n = repo.compute(name);
    if (tenant != null) {
      Tenants.Ref t = resolve(repo);
      if (!n.spec().tenant().equals(t.id())) {
        throw new ControlPlaneException(
            "compute '"
                + name
                + "' belongs to tenant "
                + repo.tenants().nameOf(n.spec().tenant()).orElse(n.spec().tenantId())
                + ", not to "
                + t.name());
      }
    }
    return n;
  }
}
