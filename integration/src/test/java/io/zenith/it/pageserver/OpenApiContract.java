package io.zenith.it.pageserver;

import static org.assertj.core.api.Assertions.assertThat;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ObjectNode;
import com.fasterxml.jackson.dataformat.yaml.YAMLFactory;
import com.networknt.schema.JsonSchema;
import com.networknt.schema.JsonSchemaFactory;
import com.networknt.schema.SpecVersion;
import com.networknt.schema.ValidationMessage;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Iterator;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.Set;
import java.util.TreeSet;
import java.util.concurrent.ConcurrentHashMap;

/**
 * An OpenAPI 3.1 document ({@code docs/api/*.yaml}) as a test oracle: checks that an answer's
 * status is one the document lists for its path and method, that its content type is the listed
 * one, and that its body validates against the listed schema (JSON Schema 2020-12, with the
 * document's component schemas resolvable), and records which listed answers were seen.
 * Thread-safe.
 */
public final class OpenApiContract {
  private static final String DEFS = "#/$defs/";

  private final JsonNode spec;
  private final ObjectNode defs;
  private final JsonSchemaFactory factory =
      JsonSchemaFactory.getInstance(SpecVersion.VersionFlag.V202012);
  private final Map<String, JsonSchema> schemas = new ConcurrentHashMap<>();
  private final Set<String> seen = ConcurrentHashMap.newKeySet();

  private OpenApiContract(JsonNode spec) {
    this.spec = spec;
    this.defs = (ObjectNode) rewriteRefs(spec.path("components").path("schemas"));
  }

  public static OpenApiContract load(Path yaml) {
    try {
      JsonNode spec = new ObjectMapper(new YAMLFactory()).readTree(yaml.toFile());
      assertThat(spec.path("openapi").asText()).as("%s: openapi version", yaml).startsWith("3.1");
      return new OpenApiContract(spec);
    } catch (IOException e) {
      throw new UncheckedIOException(e);
    }
  }

  /** The repository's copy of a spec ({@code docs/api/<name>}). */
  public static OpenApiContract repositorySpec(String name) {
    Path root = Path.of(System.getProperty("zenith.project.root", "..")).toAbsolutePath();
    return load(root.resolve("docs").resolve("api").resolve(name));
  }

  /** Component schema refs point into {@code $defs} of the wrapper schemas this class builds. */
  private static JsonNode rewriteRefs(JsonNode n) {
    JsonNode copy = n.deepCopy();
    rewriteInPlace(copy);
    return copy;
  }

  private static void rewriteInPlace(JsonNode n) {
    if (n instanceof ObjectNode o) {
      JsonNode ref = o.get("$ref");
      if (ref != null && ref.isTextual() && ref.asText().startsWith("#/components/schemas/")) {
        o.put("$ref", DEFS + ref.asText().substring("#/components/schemas/".length()));
      }
      o.elements().forEachRemaining(OpenApiContract::rewriteInPlace);
    } else if (n.isArray()) {
      n.elements().forEachRemaining(OpenApiContract::rewriteInPlace);
    }
  }

  private JsonSchema schema(JsonNode openApiSchema) {
    String key = openApiSchema.toString();
    return schemas.computeIfAbsent(
        key,
        k -> {
          ObjectNode wrapper = new ObjectMapper().createObjectNode();
          wrapper.put("$schema", "https://json-schema.org/draft/2020-12/schema");
          wrapper.set("$defs", defs);
          wrapper.putArray("allOf").add(rewriteRefs(openApiSchema));
          return factory.getSchema(wrapper);
        });
  }

  /** Validates {@code body} against a component schema ({@code Error}, {@code TimelineInfo}, …). */
  public void validateComponent(String name, JsonNode body) {
    assertThat(defs.has(name)).as("component schema %s", name).isTrue();
    ObjectNode ref = new ObjectMapper().createObjectNode().put("$ref", DEFS + name);
    Set<ValidationMessage> errors = schema(ref).validate(body);
    assertThat(errors).as("%s against %s", body, name).isEmpty();
  }

  private JsonNode resolve(JsonNode n) {
    JsonNode ref = n.get("$ref");
    if (ref == null) {
      return n;
    }
    String pointer = ref.asText();
    assertThat(pointer).startsWith("#/");
    return resolve(spec.at(pointer.substring(1)));
  }

  /**
   * Checks an answer of the API against the document: {@code template} is the path as the document
   * spells it ({@code /v1/tenant/{tenant_id}/timeline}). Returns the answer.
   */
  public HttpJson.Response check(String template, HttpJson.Response r) {
    JsonNode path = spec.path("paths").get(template);
    assertThat(path).as("path %s in the spec", template).isNotNull();
    String method = r.method().toLowerCase(Locale.ROOT);
    JsonNode op = path.get(method);
    assertThat(op).as("%s %s in the spec", r.method(), template).isNotNull();
    String code = Integer.toString(r.status());
    String listed = code;
    JsonNode response = op.path("responses").get(code);
    if (response == null) {
      listed = code.charAt(0) + "XX";
      response = op.path("responses").get(listed);
    }
    if (response == null) {
      response = op.path("responses").get("default");
      listed = "default";
    }
    assertThat(response)
        .as("status %s of %s %s is listed in the spec (answer: %s)", code, r.method(), template, r)
        .isNotNull();
    seen.add(r.method() + " " + template + " " + listed);
    response = resolve(response);
    JsonNode content = response.get("content");
    if (content == null || content.isEmpty()) {
      assertThat(r.body()).as("%s: the spec lists no body", r).isEmpty();
      return r;
    }
    String type = r.contentType() == null ? "" : r.contentType().split(";")[0].trim();
    JsonNode media = content.get(type);
    assertThat(media).as("%s: content type %s is listed (%s)", r, type, content).isNotNull();
    JsonNode schema = media.get("schema");
    if (type.equals("application/json")) {
      Set<ValidationMessage> errors = schema(schema).validate(r.json());
      assertThat(errors).as("%s against the spec's schema", r).isEmpty();
    } else {
      assertThat(schema.path("type").asText()).as("non-JSON schema of %s", r).isEqualTo("string");
    }
    return r;
  }

  /**
   * An operation of the document.
   *
   * @param method upper case
   * @param template the path as the document spells it
   * @param operation its object in the document
   * @param security its security requirements: its own, else the document's (absent: none)
   */
  public record Operation(String method, String template, JsonNode operation, JsonNode security) {}

  /** Every operation the document lists, in its order. */
  public List<Operation> operations() {
    List<Operation> out = new ArrayList<>();
    for (Iterator<Map.Entry<String, JsonNode>> ps = spec.path("paths").properties().iterator();
        ps.hasNext(); ) {
      Map.Entry<String, JsonNode> p = ps.next();
      for (Iterator<Map.Entry<String, JsonNode>> ms = p.getValue().properties().iterator();
          ms.hasNext(); ) {
        Map.Entry<String, JsonNode> m = ms.next();
        if (m.getKey().equals("parameters")) {
          continue;
        }
        JsonNode op = m.getValue();
        out.add(
            new Operation(
                m.getKey().toUpperCase(Locale.ROOT),
                p.getKey(),
                op,
                op.has("security") ? op.get("security") : spec.path("security")));
      }
    }
    return out;
  }

  /** Every answer the document lists, as {@code METHOD template status}. */
  public Set<String> listedResponses() {
    Set<String> out = new TreeSet<>();
    for (Operation o : operations()) {
      for (Iterator<String> codes = o.operation().path("responses").fieldNames();
          codes.hasNext(); ) {
        out.add(o.method() + " " + o.template() + " " + codes.next());
      }
    }
    return out;
  }

  /** The answers {@link #check} has seen. */
  public Set<String> seenResponses() {
    return new TreeSet<>(seen);
  }
}
