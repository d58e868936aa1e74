-- The text of a stored message: its content when that is a string, else the text of its
-- text parts (image parts and tool calls give none). Run previews and search read this,
-- so they never show or match base64 image data or the JSON of a part list.
CREATE OR REPLACE FUNCTION message_text(m jsonb) RETURNS text
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT CASE jsonb_typeof(m -> 'content')
        WHEN 'string' THEN m ->> 'content'
        WHEN 'array' THEN (
            SELECT string_agg(p ->> 'text', ' ')
            FROM jsonb_array_elements(m -> 'content') AS p
            WHERE p ->> 'type' = 'text')
    END
$$;
