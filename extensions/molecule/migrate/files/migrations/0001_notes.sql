CREATE TABLE notes (id int PRIMARY KEY, author text NOT NULL, body text NOT NULL);
INSERT INTO notes VALUES (1, 'molecule', 'applied; once');
