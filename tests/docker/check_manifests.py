#!/usr/bin/env python3
"""Checks docker/ where no container engine or cluster runs: the compose file
and the Kubernetes manifests lint clean (yamllint) and hang together (ports,
probes, mounts and deadlines agree with the policies they run), every policy
shipped there passes `xsgw --check`, and Kamailio accepts the demo's config.

Usage: check_manifests.py XSGW. Prints PASS/FAIL lines and "N passed, N
failed, N skipped"; exits 77 when a tool it needs is missing outside CI."""
import os
import re
import shutil
import subprocess
import sys
import tempfile

import yaml

TOP = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
DOCKER = os.path.join(TOP, "docker")
K8S = os.path.join(DOCKER, "k8s")
REQUIRE = os.environ.get("XS_IT_REQUIRE") == "1" or os.environ.get("CI") not in (None, "", "0", "false", "no")
results = {"passed": 0, "failed": 0, "skipped": 0}


def check(name, ok, why=""):
    results["passed" if ok else "failed"] += 1
    print(("PASS " if ok else "FAIL ") + name + ("" if ok else ": " + why))


def skip(name, why):
    if REQUIRE:
        check(name, False, why + " (required under CI)")
        return
    results["skipped"] += 1
    print("SKIP %s: %s" % (name, why))


def policy_summary(xsgw, path):
    """xsgw --check's summary of path: (ok, admin port or None, drain s)."""
    p = subprocess.run([xsgw, "--check", path, "--lua-dir", os.path.join(TOP, "lua")],
                       capture_output=True, text=True, timeout=30)
    admin = re.search(r"^  admin: .*:(\d+) \(", p.stdout, re.M)
    drain = re.search(r"drain on SIGTERM: at most ([\d.]+) s", p.stdout)
    return (p.returncode == 0, int(admin.group(1)) if admin else None,
            float(drain.group(1)) if drain else None, p.stdout + p.stderr)


def duration(s):
    m = re.fullmatch(r"(\d+)s", str(s))
    return int(m.group(1)) if m else None


def lint():
    if not shutil.which("yamllint"):
        return skip("docker.yamllint", "yamllint is not installed (scripts/deps.sh test)")
    files = [os.path.join(DOCKER, "compose.yaml")] + sorted(
        os.path.join(K8S, f) for f in os.listdir(K8S) if f.endswith(".yaml"))
    p = subprocess.run(["yamllint", "-s", "-c", os.path.join(TOP, "tests/docker/yamllint.yaml")]
                       + files, capture_output=True, text=True)
    check("docker.yamllint", p.returncode == 0, p.stdout + p.stderr)


def k8s(xsgw):
    kust = yaml.safe_load(open(os.path.join(K8S, "kustomization.yaml")))
    docs = []
    for r in kust["resources"]:
        path = os.path.join(K8S, r)
        check("k8s.resource_exists " + r, os.path.exists(path), "kustomization names a missing file")
        if os.path.exists(path):
            docs += [d for d in yaml.safe_load_all(open(path)) if d]
    for d in docs:
        check("k8s.shape %s/%s" % (d.get("kind"), d.get("metadata", {}).get("name")),
              d.get("apiVersion") and d.get("kind") and d.get("metadata", {}).get("name"),
              "apiVersion, kind and metadata.name are required")
    by = {(d["kind"], d["metadata"]["name"]): d for d in docs}
    gens = kust.get("configMapGenerator", [])
    check("k8s.configmap_in_place", kust.get("generatorOptions", {}).get("disableNameSuffixHash") is True,
          "a hashed ConfigMap name turns every policy edit into a rolling restart, not a reload")
    gen = {g["name"]: g["files"] for g in gens}
    check("k8s.configmap_files", "xsgw-policy" in gen and
          all(os.path.exists(os.path.join(K8S, f)) for f in gen.get("xsgw-policy", [])),
          "the xsgw-policy ConfigMap's files must exist")

    dep = by.get(("Deployment", "xsgw"))
    check("k8s.deployment", dep is not None, "no Deployment xsgw")
    if not dep:
        return
    spec = dep["spec"]
    tmpl = spec["template"]
    pod = tmpl["spec"]
    c = pod["containers"][0]
    check("k8s.replicas", spec.get("replicas") == 2, "two replicas serve the domain")
    check("k8s.selector", spec["selector"]["matchLabels"].items() <= tmpl["metadata"]["labels"].items(),
          "the selector does not match the pod labels")
    ports = {p["name"]: p for p in c["ports"]}
    policy_env = {e["name"]: e.get("value") for e in c.get("env", [])}.get("XSGW_POLICY")
    mounts = {m["name"]: m for m in c["volumeMounts"]}
    vols = {v["name"]: v for v in pod["volumes"]}
    cm_vol = [n for n, v in vols.items() if v.get("configMap", {}).get("name") == "xsgw-policy"]
    check("k8s.policy_mounted", len(cm_vol) == 1 and cm_vol[0] in mounts, "the policy ConfigMap is not mounted")
    if cm_vol and cm_vol[0] in mounts:
        m = mounts[cm_vol[0]]
        check("k8s.policy_directory_mount", "subPath" not in m,
              "a subPath mount never sees ConfigMap updates")
        fname = gen.get("xsgw-policy", ["?"])[0]
        check("k8s.policy_path", policy_env == m["mountPath"].rstrip("/") + "/" + os.path.basename(fname),
              "XSGW_POLICY %s is not the mounted %s" % (policy_env, fname))
        ok, admin, drain, out = policy_summary(xsgw, os.path.join(K8S, fname))
        check("k8s.policy_check", ok, out)
        check("k8s.admin_port", admin is not None and ports.get("admin", {}).get("containerPort") == admin,
              "the admin container port is not the policy's admin.listen port %s" % admin)
        grace = pod.get("terminationGracePeriodSeconds", 30)
        check("k8s.drain_fits_grace", drain is not None and drain < grace,
              "drain.deadline %s must end before terminationGracePeriodSeconds %s" % (drain, grace))
    for probe, path in (("livenessProbe", "/healthz"), ("readinessProbe", "/readyz")):
        h = c.get(probe, {}).get("httpGet", {})
        check("k8s." + probe, h.get("path") == path and h.get("port") in ports,
              "%s must GET %s on a named container port" % (probe, path))
    for (kind, name), d in by.items():
        if kind != "Service":
            continue
        sel = d["spec"]["selector"]
        target = next((x for x in docs if x["kind"] == "Deployment" and
                       sel.items() <= x["spec"]["template"]["metadata"]["labels"].items()), None)
        check("k8s.service_selects " + name, target is not None, "selects no Deployment")
        if target:
            cports = {p["name"] for cc in target["spec"]["template"]["spec"]["containers"]
                      for p in cc.get("ports", [])}
            for p in d["spec"]["ports"]:
                check("k8s.service_port %s/%s" % (name, p["name"]), p.get("targetPort") in cports,
                      "targetPort %s is no container port name" % p.get("targetPort"))


def compose(xsgw):
    doc = yaml.safe_load(open(os.path.join(DOCKER, "compose.yaml")))
    svcs = doc["services"]
    gws = [n for n, s in svcs.items() if s.get("image") == "xsgw:latest"]
    check("compose.two_instances", len(gws) == 2, "compose runs %d gateway instances" % len(gws))
    ips = []
    for n in gws:
        s = svcs[n]
        pol = s["environment"]["XSGW_POLICY"]
        host = None
        for v in s["volumes"]:
            src, dst = v.split(":")[:2]
            if pol.startswith(dst.rstrip("/") + "/"):
                host = os.path.join(DOCKER, src, pol[len(dst.rstrip("/")) + 1:])
        check("compose.policy_mounted " + n, host is not None and os.path.exists(host),
              "XSGW_POLICY %s is not in a mounted directory of docker/" % pol)
        if not host or not os.path.exists(host):
            continue
        ok, admin, drain, out = policy_summary(xsgw, host)
        check("compose.policy_check " + n, ok, out)
        published = [p for p in s.get("ports", []) if str(p).endswith(":%s/tcp" % admin)]
        check("compose.admin_published " + n, admin is not None and len(published) == 1,
              "the admin port %s is not published" % admin)
        grace = duration(s.get("stop_grace_period", "10s"))
        check("compose.drain_fits_grace " + n, drain is not None and grace and drain < grace,
              "drain.deadline %s must end before stop_grace_period %s" % (drain, grace))
        ips.append(s["networks"]["fed"]["ipv4_address"])
    dl = open(os.path.join(DOCKER, "kamailio", "dispatcher.list")).read()
    listed = re.findall(r"^1 sip:([\d.]+):5060", dl, re.M)
    check("compose.kamailio_dispatches_to_both", sorted(listed) == sorted(ips),
          "dispatcher.list names %s, the instances are %s" % (listed, ips))
    if not shutil.which("kamailio"):
        return skip("compose.kamailio_config", "kamailio is not installed")
    with tempfile.TemporaryDirectory() as tmp:
        cfg = open(os.path.join(DOCKER, "kamailio", "kamailio.cfg")).read()
        shutil.copy(os.path.join(DOCKER, "kamailio", "dispatcher.list"), tmp)
        cfg = cfg.replace("/etc/kamailio/dispatcher.list", os.path.join(tmp, "dispatcher.list"))
        open(os.path.join(tmp, "k.cfg"), "w").write(cfg)
        p = subprocess.run(["kamailio", "-c", "-f", os.path.join(tmp, "k.cfg")],
                           capture_output=True, text=True, timeout=60)
        check("compose.kamailio_config", p.returncode == 0, p.stderr[-2000:])


def main():
    xsgw = sys.argv[1]
    lint()
    k8s(xsgw)
    compose(xsgw)
    print("%(passed)d passed, %(failed)d failed, %(skipped)d skipped" % results)
    if results["failed"]:
        return 1
    return 77 if results["skipped"] and not results["passed"] else 0


if __name__ == "__main__":
    sys.exit(main())
