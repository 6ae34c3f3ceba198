// STS GetCallerIdentity through the AWS SDK for Java v2's default credentials provider chain (system properties,
// env, web identity, shared config / credential_process, container endpoint, IMDS), exactly as a real Java
// application gets credentials: no provider is handed to the client. Region from AWS_REGION; endpoint from
// AWS_ENDPOINT_URL_STS / AWS_ENDPOINT_URL when set (the SDK reads them itself).
//   java WhoAmI                 prints {"Account", "Arn", "UserId"} as JSON; on error the exception's class and
//                               message on stderr, exit 1
//   java WhoAmI --poll OUT STOP one long-lived client calling STS every 0.2 s until the file STOP exists, one JSON
//                               line per call appended to OUT: {"ok", "arn", "key"} or {"ok": false, "error"}
// tests/run.sh compiles this file against the SDK it fetches: tests/java/README.md says which and why.
import java.io.FileWriter;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Paths;
import software.amazon.awssdk.http.urlconnection.UrlConnectionHttpClient;
import software.amazon.awssdk.identity.spi.AwsCredentialsIdentity;
import software.amazon.awssdk.services.sts.StsClient;
import software.amazon.awssdk.services.sts.model.GetCallerIdentityResponse;

public final class WhoAmI {
    public static void main(String[] args) throws IOException, InterruptedException {
        // the JDK's HttpURLConnection client, named because the SDK found here carries no service-loader entries
        try (StsClient sts = StsClient.builder().httpClient(UrlConnectionHttpClient.create()).build()) {
            if (args.length == 3 && args[0].equals("--poll")) {
                poll(sts, args[1], args[2]);
                return;
            }
            try {
                GetCallerIdentityResponse r = sts.getCallerIdentity();
                System.out.println("{\"Account\": " + quote(r.account()) + ", \"Arn\": " + quote(r.arn())
                        + ", \"UserId\": " + quote(r.userId()) + "}");
            } catch (RuntimeException e) {
                System.err.println(e.getClass().getSimpleName() + ": " + e.getMessage());
                System.exit(1);
            }
        }
    }

    private static void poll(StsClient sts, String out, String stop) throws IOException, InterruptedException {
        try (FileWriter f = new FileWriter(out, true)) {
            while (!Files.exists(Paths.get(stop))) {
                String line;
                try {
                    String arn = sts.getCallerIdentity().arn();
                    // the credentials the client resolves now (through the same cached provider it signs with)
                    AwsCredentialsIdentity id = sts.serviceClientConfiguration().credentialsProvider()
                            .resolveIdentity().join();
                    line = "{\"ok\": true, \"arn\": " + quote(arn) + ", \"key\": " + quote(id.accessKeyId()) + "}";
                } catch (RuntimeException e) {
                    String error = e.getClass().getSimpleName() + ": " + e.getMessage();
                    line = "{\"ok\": false, \"error\": " + quote(error.substring(0, Math.min(300, error.length())))
                            + "}";
                }
                f.write(line + "\n");
                f.flush();
                Thread.sleep(200);
            }
        }
    }

    private static String quote(String s) {
        if (s == null) {
            return "null";
        }
        StringBuilder b = new StringBuilder("\"");
        for (char c : s.toCharArray()) {
            if (c == '"' || c == '\\') {
                b.append('\\').append(c);
            } else if (c < 0x20) {
                b.append(String.format("\\u%04x", (int) c));
            } else {
                b.append(c);
            }
        }
        return b.append('"').toString();
    }
}
