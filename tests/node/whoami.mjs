// STS GetCallerIdentity through the AWS SDK for JavaScript v3's default credential chain
// (env, shared config / credential_process, container endpoint, IMDS, ...), exactly as a real
// Node application would get credentials. Region from AWS_REGION; endpoint from
// AWS_ENDPOINT_URL_STS / AWS_ENDPOINT_URL when set.
// Prints {"Account", "Arn", "UserId"} as JSON on stdout; on error prints the error's name and
// message on stderr and exits 1.
// Node 20 is still supported by this SDK release; keep stderr for real errors only.
process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= 'true';

try {
  const { STSClient, GetCallerIdentityCommand } = await import('@aws-sdk/client-sts');
  const client = new STSClient({});
  const { Account, Arn, UserId } = await client.send(new GetCallerIdentityCommand({}));
  process.stdout.write(`${JSON.stringify({ Account, Arn, UserId })}\n`);
} catch (err) {
  process.stderr.write(`${err?.name ?? 'Error'}: ${err?.message ?? String(err)}\n`);
  process.exitCode = 1;
}
