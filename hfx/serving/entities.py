"""How a sentence's word tags become entities: owned by the serving half, which answers with entity spans, and
read by evaluate, so the entity F1 it reports is that of the spans predict and serve give. No dependencies, so
that the training stages that import it depend on this one small file only."""


def entity_spans(tags: list[str]) -> list[tuple[str, int, int]]:
    """(type, first word, last word) of each entity in a sentence's word tags, grouped as the pipeline groups
    them: B-X starts an entity, I-X continues one of type X just before it or starts one, O ends it. evaluate
    scores entities grouped by this too, so its F1 is that of the spans predict and serve give."""
    entities, previous = [], None
    for i, tag in enumerate(tags):
        prefix, kind = tag.split("-", 1) if tag[:2] in ("B-", "I-") else ("", tag)
        if tag == "O":
            previous = None
            continue
        if entities and previous == kind and prefix != "B":
            entities[-1][2] = i
        else:
            entities.append([kind, i, i])
        previous = kind
    return [tuple(entity) for entity in entities]
